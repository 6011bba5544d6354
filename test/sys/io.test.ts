// The I/O bindings against the real kernel: write and read through a pipe, splice through a pipe between two
// sockets, F_SETPIPE_SZ, and the -errno convention (EAGAIN as a value, not an exception).
import t, { type Test } from 'tap';
import net from 'node:net';
import { once } from 'node:events';
import { AF, MSG, SOCK, SPLICE_F } from '../../dist/sys/constants.js';
import { bufferAddress, close, connect, errnoName, lowMemory, read, recvAt, releaseLowMemory, send, sendAt, socket, splice, write } from '../../dist/sys/libc.js';
import { createPipe, pipeSize } from '../../dist/sys/setup.js';
import { encodeSockaddr } from '../../dist/sys/sockaddr.js';

t.test('two writes into a pipe come out as one read', async (t) => {
  const fds = new Int32Array(2);
  t.equal(createPipe(65536, fds), 0);
  t.teardown(() => {
    close(fds[0]);
    close(fds[1]);
  });
  t.equal(write(fds[1], Buffer.from('head:'), 5), 5);
  t.equal(write(fds[1], Buffer.from('body'), 4), 4);
  const out = Buffer.alloc(32);
  t.equal(read(fds[0], out, 32), 9);
  t.equal(out.toString('utf8', 0, 9), 'head:body');
  t.equal(errnoName(read(fds[0], out, 32)), 'EAGAIN', 'an empty non-blocking pipe gives -EAGAIN');
});

t.test('F_SETPIPE_SZ: a pipe asked for 256 KiB has at least that', async (t) => {
  const fds = new Int32Array(2);
  t.equal(createPipe(256 * 1024, fds), 0);
  t.ok(pipeSize(fds[0]) >= 256 * 1024, `pipe size ${pipeSize(fds[0])}`);
  close(fds[0]);
  close(fds[1]);
});

t.test('splice moves bytes socket -> pipe -> socket without them entering the process', async (t) => {
  // A real TCP server that collects what reaches it.
  const got: Buffer[] = [];
  const srv = net.createServer((s) => s.on('data', (d) => got.push(d)));
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  t.teardown(() => srv.close());
  const sa = encodeSockaddr({ family: 'ipv4', host: '127.0.0.1', port: (srv.address() as net.AddressInfo).port });

  // src: our socket to a Node server whose side we write to; dst: our socket to the collecting server.
  const inner = net.createServer();
  inner.listen(0, '127.0.0.1');
  await once(inner, 'listening');
  t.teardown(() => inner.close());
  const src = socket(AF.INET, SOCK.STREAM | SOCK.CLOEXEC, 0);
  const isa = encodeSockaddr({ family: 'ipv4', host: '127.0.0.1', port: (inner.address() as net.AddressInfo).port });
  const accepted = once(inner, 'connection');
  t.equal(connect(src, isa, isa.length), 0);
  const [peer] = (await accepted) as [net.Socket];
  const dst = socket(AF.INET, SOCK.STREAM | SOCK.CLOEXEC, 0);
  t.equal(connect(dst, sa, sa.length), 0);

  peer.write('spliced bytes');
  await new Promise((r) => setTimeout(r, 50));
  const fds = new Int32Array(2);
  t.equal(createPipe(65536, fds), 0);
  const flags = SPLICE_F.MOVE | SPLICE_F.NONBLOCK;
  t.equal(splice(src, fds[1], 65536, flags), 13, 'socket -> pipe');
  t.equal(splice(fds[0], dst, 13, flags), 13, 'pipe -> socket');
  t.equal(send(dst, Buffer.from('!'), 1, MSG.NOSIGNAL), 1);
  await new Promise((r) => setTimeout(r, 50));
  t.equal(Buffer.concat(got).toString(), 'spliced bytes!');
  t.equal(write(-1, Buffer.alloc(1), 1), -9, 'write to a bad fd is -EBADF');
  peer.destroy();
  for (const fd of [src, dst, fds[0], fds[1]]) close(fd);
});

/** A loopback server running `onConn`, and a blocking socket of ours connected to it (closed at teardown). */
async function connectedTo(t: Test, onConn: (s: net.Socket) => void): Promise<number> {
  const srv = net.createServer(onConn);
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  t.teardown(() => srv.close());
  const fd = socket(AF.INET, SOCK.STREAM | SOCK.CLOEXEC, 0);
  const sa = encodeSockaddr({ family: 'ipv4', host: '127.0.0.1', port: (srv.address() as net.AddressInfo).port });
  t.equal(connect(fd, sa, sa.length), 0);
  t.teardown(() => close(fd));
  return fd;
}

t.test('recvAt and sendAt take a C address: bytes land at, and leave from, that offset of the buffer', async (t) => {
  const got: Buffer[] = [];
  const fd = await connectedTo(t, (s) => {
    s.on('data', (d) => got.push(d));
    s.write('from the peer');
  });
  const mem = Buffer.allocUnsafeSlow(4096).fill(0x2e);
  const base = Number(bufferAddress(mem));
  await new Promise((r) => setTimeout(r, 50));
  t.equal(recvAt(fd, base + 100, 64), 13);
  t.equal(mem.toString('latin1', 98, 115), '..from the peer..', 'at offset 100, nothing before or after');
  mem.write('xxhello there', 200, 'latin1');
  t.equal(sendAt(fd, base + 202, 11, MSG.NOSIGNAL), 11);
  await new Promise((r) => setTimeout(r, 50));
  t.equal(Buffer.concat(got).toString(), 'hello there', 'sent from offset 202');
  t.equal(errnoName(sendAt(-1, base, 1, MSG.NOSIGNAL)), 'EBADF', 'errors are -errno, as send()');
});

t.test('lowMemory: zeroed memory below 2 GiB on x86-64, where a real recv lands at its address', { skip: process.arch !== 'x64' && 'MAP_32BIT is x86-64 only' }, async (t) => {
  const got = lowMemory(1 << 20);
  if (got === null) throw new Error('no memory below 2 GiB on an x86-64 machine');
  const { bytes, address } = got;
  t.ok(address + bytes.length <= 2 ** 31, 'the whole range is below 2^31, so its addresses are small integers');
  t.equal(address % 4096, 0, 'page-aligned');
  t.equal(bytes.length, 1 << 20);
  t.equal(Number(bufferAddress(bytes)), address, 'the Buffer views that very memory');
  t.ok(bytes.every((b) => b === 0), 'zeroed');
  const fd = await connectedTo(t, (s) => s.end('low and behold'));
  await new Promise((r) => setTimeout(r, 50));
  t.equal(recvAt(fd, address + 5000, 64), 14);
  t.equal(bytes.toString('latin1', 5000, 5014), 'low and behold');
  t.equal(bytes[4999], 0);
  t.equal(bytes[5014], 0);
  // Once released the memory is gone (touching `bytes` now would fault); new memory can be had again.
  releaseLowMemory();
  const again = lowMemory(4096);
  t.ok(again !== null && again.address + 4096 <= 2 ** 31, 'mapped again after a release');
  releaseLowMemory();
});
