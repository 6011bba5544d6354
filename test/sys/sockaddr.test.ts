// sockaddr_in / sockaddr_in6 / sockaddr_un: our bytes match the C layout, and the kernel agrees (bind our
// encoding, read it back with getsockname).
import t from 'tap';
import { unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  SOCKADDR_IN6_SIZE,
  SOCKADDR_IN_SIZE,
  SOCKADDR_UN_SIZE,
  decodeSockaddr,
  encodeSockaddr,
  formatAddress,
  parseAddress,
  ipv6Bytes,
} from '../../dist/sys/sockaddr.js';
import { listenSocket, localAddress } from '../../dist/sys/setup.js';
import { close, connect, errnoName, socket } from '../../dist/sys/libc.js';
import { AF, SOCK } from '../../dist/sys/constants.js';

t.test('sockaddr_in is 16 bytes: family LE, port BE, address, zero padding', async (t) => {
  const b = encodeSockaddr({ family: 'ipv4', host: '127.1.2.3', port: 0x1f90 });
  t.equal(b.length, SOCKADDR_IN_SIZE);
  t.same([...b], [2, 0, 0x1f, 0x90, 127, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0]);
});

t.test('sockaddr_in6 is 28 bytes: family, port BE, flowinfo 0, 16 address bytes, scope 0', async (t) => {
  const b = encodeSockaddr({ family: 'ipv6', host: '2001:db8::1', port: 443 });
  t.equal(b.length, SOCKADDR_IN6_SIZE);
  t.same([...b.subarray(0, 8)], [10, 0, 0x01, 0xbb, 0, 0, 0, 0]);
  t.same([...b.subarray(8, 24)], [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
  t.same([...b.subarray(24)], [0, 0, 0, 0]);
  t.same([...ipv6Bytes('::ffff:10.0.0.1')], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1]);
  t.same([...ipv6Bytes('::')], new Array(16).fill(0));
  t.same([...ipv6Bytes('1:2:3:4:5:6:7:8')], [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8]);
});

t.test('sockaddr_un is 110 bytes: family then a NUL-terminated path', async (t) => {
  const b = encodeSockaddr({ family: 'unix', path: '/tmp/x.sock' });
  t.equal(b.length, SOCKADDR_UN_SIZE);
  t.equal(b.readUInt16LE(0), 1);
  t.equal(b.toString('utf8', 2, 13), '/tmp/x.sock');
  t.equal(b[13], 0);
  t.same(decodeSockaddr(b, b.length), { family: 'unix', path: '/tmp/x.sock' });
});

t.test('the kernel reads our encodings: bind, then getsockname decodes the same address', async (t) => {
  for (const a of [
    { family: 'ipv4', host: '127.0.0.1', port: 0 },
    { family: 'ipv6', host: '::1', port: 0 },
  ] as const) {
    const fd = listenSocket(a, { backlog: 8, reusePort: false });
    const got = localAddress(fd);
    close(fd);
    t.equal(got.family, a.family);
    if (got.family !== 'unix') {
      t.equal(got.host, a.host);
      t.ok(got.port > 0, `the kernel picked a port for ${formatAddress(a)}`);
    }
  }
});

t.test('parseAddress accepts the three forms and names what is wrong otherwise', async (t) => {
  t.same(parseAddress('127.0.0.1:80'), { family: 'ipv4', host: '127.0.0.1', port: 80 });
  t.same(parseAddress('[::1]:8080'), { family: 'ipv6', host: '::1', port: 8080 });
  t.same(parseAddress('unix:/run/app.sock'), { family: 'unix', path: '/run/app.sock' });
  t.same(parseAddress('localhost:3000'), { family: 'name', host: 'localhost', port: 3000 });
  const bad: [string, RegExp][] = [
    ['127.0.0.1', /expected HOST:PORT/],
    ['127.0.0.1:70000', /port must be a number from 0 to 65535/],
    ['127.0.0.1:http', /port must be a number/],
    ['::1:80', /must be written in brackets/],
    ['[::1]80', /expected :PORT/],
    ['[nope]:80', /not an IPv6 address/],
    ['unix:', /path is empty/],
    [`unix:/${'x'.repeat(120)}`, /over 107 bytes/],
    ['bad_host!:80', /not a valid host name/],
  ];
  for (const [text, why] of bad) {
    t.throws(() => parseAddress(text), { code: 'FFIP_ERR_BAD_ADDRESS', message: why }, text);
  }
});

t.test('the kernel accepts our sockaddr_un: connect() through it reaches a listening unix socket', async (t) => {
  const path = join(tmpdir(), `ffip-sa-${process.pid}.sock`);
  const net = await import('node:net');
  let accepted = 0;
  const srv = net.createServer((c) => {
    accepted++;
    c.destroy();
  });
  await new Promise<void>((r) => srv.listen(path, r));
  t.teardown(() => {
    srv.close();
    try {
      unlinkSync(path);
    } catch {}
  });
  const b = encodeSockaddr({ family: 'unix', path });
  const fd = socket(AF.UNIX, SOCK.STREAM | SOCK.CLOEXEC, 0);
  t.ok(fd >= 0);
  t.equal(connect(fd, b, b.length), 0, 'a blocking connect to the path succeeds');
  close(fd);
  const bad = encodeSockaddr({ family: 'unix', path: path + '.missing' });
  const fd2 = socket(AF.UNIX, SOCK.STREAM | SOCK.CLOEXEC, 0);
  t.equal(errnoName(connect(fd2, bad, bad.length)), 'ENOENT', 'a path with no socket is ENOENT');
  close(fd2);
  await new Promise((r) => setTimeout(r, 50));
  t.equal(accepted, 1, 'the server saw exactly our connection');
});
