// A worker that dies while serving (here: its epoll fd is closed under it, so its next epoll_wait fails
// with EBADF, a real fault with no test hook in the code) does not take the process down: the supervisor
// closes what the dead worker left open, starts a new worker on the same port, and connections held by
// the other worker carry on.
import t from 'tap';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import type net from 'node:net';
import { start } from '../../dist/index.js';
import { close } from '../../dist/sys/libc.js';
import { signalEventfd } from '../../dist/sys/setup.js';
import { connect, echoServer, readBytes, waitFor } from '../helpers/net.js';

/** fds of this process that are TCP sockets listening on 127.0.0.1:`port`, from /proc/net/tcp. */
function listenerFds(port: number): number[] {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const inodes = new Set<string>();
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length > 9 && f[1] === `0100007F:${hexPort}` && f[3] === '0A') inodes.add(f[9]);
  }
  const fds: number[] = [];
  for (const name of readdirSync('/proc/self/fd')) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${name}`));
      if (m && inodes.has(m[1])) fds.push(Number(name));
    } catch {}
  }
  return fds;
}

/** The epoll fd whose interest list holds `fd` (from /proc/self/fdinfo "tfd:" lines), or -1. */
function epollWatching(fd: number): number {
  for (const name of readdirSync('/proc/self/fdinfo')) {
    try {
      const info = readFileSync(`/proc/self/fdinfo/${name}`, 'utf8');
      if (new RegExp(`^tfd:\\s+${fd}\\s`, 'm').test(info)) return Number(name);
    } catch {}
  }
  return -1;
}

/** The eventfds in an epoll set: a worker's set holds its listener, its eventfd and its connections. */
function eventfdsWatchedBy(epfd: number): number[] {
  const info = readFileSync(`/proc/self/fdinfo/${epfd}`, 'utf8');
  return [...info.matchAll(/^tfd:\s+(\d+)\s/gm)]
    .map((m) => Number(m[1]))
    .filter((fd) => readlinkSync(`/proc/self/fd/${fd}`) === 'anon_inode:[eventfd]');
}

t.test('a worker that dies is replaced; the other worker and the port keep serving', async (t) => {
  const backend = await echoServer();
  const proxy = await start({ listen: '127.0.0.1:0', backend: `127.0.0.1:${backend.port}`, workers: 2, logLevel: 'silent' });
  t.teardown(async () => {
    await proxy.close(0);
    await backend.close();
  });

  // Connections spread over both workers by the kernel.
  const conns: net.Socket[] = [];
  for (let i = 0; i < 40; i++) {
    const c = await connect(proxy.port);
    c.write('x');
    await readBytes(c, 1);
    conns.push(c);
  }
  const before = proxy.workerStats();
  t.ok(before[0].active > 0 && before[1].active > 0, `both workers hold connections (${before[0].active}, ${before[1].active})`);

  // Pick one worker through its listening socket: the epoll set watching that socket is that worker's.
  const listeners = listenerFds(proxy.port);
  t.equal(listeners.length, 2, 'one listening socket per worker');
  const epfd = epollWatching(listeners[0]);
  t.ok(epfd >= 0, 'found the epoll set that watches it');
  const wake = eventfdsWatchedBy(epfd);
  t.equal(wake.length, 1, 'that set holds exactly one eventfd: the worker waker');

  // Close the worker's epoll fd under it, then wake it: its next epoll_wait fails and the thread dies.
  close(epfd);
  signalEventfd(wake[0]);

  await waitFor(() => proxy.workerStats().some((w) => w.restarts === 1), 'a worker to be restarted');
  const dead = proxy.workerStats().findIndex((w) => w.restarts === 1);
  const alive = 1 - dead;
  await waitFor(() => proxy.workerStats()[dead].state === 1, 'the new worker to run');

  // The survivor's connections still echo; the dead worker's were closed by the supervisor.
  const survivors = proxy.workerStats()[alive].active;
  t.equal(survivors, before[alive].active, 'the other worker lost no connection');
  let echoed = 0;
  let closedCount = 0;
  for (const c of conns) {
    if (c.destroyed || c.readableEnded) {
      closedCount++;
      continue;
    }
    c.write('y');
    const got = await Promise.race([readBytes(c, 1).then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 2000))]);
    if (got) echoed++;
    else closedCount++;
  }
  t.equal(echoed, before[alive].active, 'every connection on the surviving worker still works');
  t.equal(closedCount, before[dead].active, 'every connection of the dead worker was closed, none left hanging');

  // And the port serves new connections, on both workers again.
  let served = 0;
  for (let i = 0; i < 60; i++) {
    const c = await connect(proxy.port);
    c.write('z');
    if ((await readBytes(c, 1)).toString() === 'z') served++;
    c.destroy();
  }
  t.equal(served, 60, 'every new connection is served');
  t.ok(proxy.workerStats()[dead].accepted > 0, 'the new worker takes connections');
  for (const c of conns) c.destroy();
});
