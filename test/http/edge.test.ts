// HTTP mode at its edges: a backend that reads an upload slowly (backpressure, not a failure), a backend
// that answers before the request body has arrived, and a drain with keep-alive clients.
import t, { type Test } from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { start, type StartOptions } from '../../dist/index.js';
import { peerDone, startCli, waitFor } from '../helpers/net.js';

/** An HTTP-mode proxy (one worker) in front of a backend that answers every request with `ok`. */
async function okProxy(t: Test, o: StartOptions) {
  const srv = http.createServer((_req, res) => res.end('ok'));
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const backend = `127.0.0.1:${(srv.address() as net.AddressInfo).port}`;
  const proxy = await start({ listen: '127.0.0.1:0', backend, mode: 'http', workers: 1, logLevel: 'silent', ...o });
  t.teardown(async () => {
    await proxy.close(0);
    srv.close();
  });
  return proxy;
}

function rawRequest(port: number, head: string): net.Socket {
  const c = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  c.on('error', () => {});
  c.write(head);
  return c;
}

function collect(c: net.Socket): { text: () => string } {
  let text = '';
  c.on('data', (d) => (text += d.toString('latin1')));
  return { text: () => text };
}

t.test('a backend that stops reading an upload for a while gets all of it (backpressure, no error)', async (t) => {
  const body = randomBytes(16 << 20);
  const want = createHash('sha256').update(body).digest('hex');
  const srv = http.createServer((req, res) => {
    const h = createHash('sha256');
    let n = 0;
    req.pause();
    setTimeout(() => req.resume(), 400); // stall long enough for every buffer on the way to fill
    req.on('data', (d) => {
      h.update(d);
      n += d.length;
    });
    req.on('end', () => res.end(`${n} ${h.digest('hex')}`));
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const proxy = await start({ listen: '127.0.0.1:0', backend: `127.0.0.1:${(srv.address() as net.AddressInfo).port}`, mode: 'http', workers: 1, logLevel: 'silent' });
  t.teardown(async () => {
    await proxy.close(0);
    srv.close();
  });
  const reply = await new Promise<string>((resolve, reject) => {
    const r = http.request({ host: '127.0.0.1', port: proxy.port, method: 'POST', path: '/up', headers: { 'content-length': body.length } }, (res) => {
      let s = '';
      res.on('data', (d) => (s += d));
      res.on('end', () => resolve(s));
    });
    r.on('error', reject);
    r.end(body);
  });
  t.equal(reply, `${body.length} ${want}`, 'the backend got every byte, in order');
  t.equal(proxy.stats().ioErrors, 0);
});

t.test('a response before the request body has arrived: relayed with Connection: close, then the client is closed', async (t) => {
  let requests = 0;
  const srv = net.createServer((s) => {
    s.on('error', () => {});
    s.once('data', () => {
      requests++;
      s.write('HTTP/1.1 413 Content Too Large\r\nContent-Length: 4\r\n\r\nnope');
    });
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const proxy = await start({ listen: '127.0.0.1:0', backend: `127.0.0.1:${(srv.address() as net.AddressInfo).port}`, mode: 'http', workers: 1, logLevel: 'silent' });
  t.teardown(async () => {
    await proxy.close(0);
    srv.close();
  });
  const c = rawRequest(proxy.port, 'POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000\r\n\r\n' + 'x'.repeat(1000));
  const got = collect(c);
  const done = peerDone(c); // the FIN may come right behind the response
  await waitFor(() => /nope$/.test(got.text()), 'the early response');
  t.match(got.text(), /^HTTP\/1\.1 413 Content Too Large\r\n/);
  t.match(got.text(), /\r\nConnection: close\r\n/i, 'the client is told the connection ends');
  c.write('x'.repeat(5000)); // the rest of the body must not be taken for a request
  await done;
  t.equal(requests, 1);
  t.equal(proxy.stats().generated, 0, 'no generated 400 for the body tail');
  c.destroy();
});

t.test('SIGTERM in HTTP mode: idle keep-alive clients are closed at once, a request in flight finishes with Connection: close', async (t) => {
  let slow: http.ServerResponse | null = null;
  const srv = http.createServer((req, res) => {
    if (req.url === '/slow') slow = res;
    else res.end('ok');
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  t.teardown(() => srv.close());
  const run = await startCli(['--mode', 'http', '--backend', `127.0.0.1:${(srv.address() as net.AddressInfo).port}`, '--workers', '1', '--drain-timeout', '30']);
  t.teardown(() => run.child.kill('SIGKILL'));

  // An idle keep-alive client: one request answered, connection kept.
  const idle = rawRequest(run.port, 'GET /a HTTP/1.1\r\nHost: h\r\n\r\n');
  const idleText = collect(idle);
  await waitFor(() => /\r\n\r\nok$/.test(idleText.text()), 'the idle client\'s answer');
  const idleGone = peerDone(idle);

  // A request in flight while the drain starts.
  const busy = rawRequest(run.port, 'GET /slow HTTP/1.1\r\nHost: h\r\n\r\n');
  const busyText = collect(busy);
  await waitFor(() => slow !== null, 'the slow request at the backend');

  const exited = once(run.child, 'exit');
  run.child.kill('SIGTERM');
  t.ok(await idleGone, 'the idle keep-alive client was closed without waiting for the drain timeout');
  slow!.end('late');
  await waitFor(() => /late$/.test(busyText.text()), 'the in-flight response');
  t.match(busyText.text(), /\r\nConnection: close\r\n/i, 'the in-flight response says the connection ends');
  const [code] = await exited;
  t.equal(code, 0, 'exited 0 once the last request was done, long before the 30 s drain timeout');
  idle.destroy();
  busy.destroy();
});

t.test('--idle-timeout: a kept-alive client that goes silent is closed; one that keeps asking is not', async (t) => {
  const proxy = await okProxy(t, { idleTimeoutMs: 300 });
  const quiet = rawRequest(proxy.port, 'GET /1 HTTP/1.1\r\nHost: h\r\n\r\n');
  const quietText = collect(quiet);
  const quietGone = peerDone(quiet);
  await waitFor(() => /ok$/.test(quietText.text()), 'the first answer');
  // A busy client on the same proxy: a request every 100 ms, well inside the idle timeout.
  const busy = rawRequest(proxy.port, 'GET /b0 HTTP/1.1\r\nHost: h\r\n\r\n');
  const busyText = collect(busy);
  let busyClosed = false;
  busy.on('end', () => (busyClosed = true));
  for (let i = 1; i <= 8; i++) {
    await new Promise((r) => setTimeout(r, 100));
    busy.write(`GET /b${i} HTTP/1.1\r\nHost: h\r\n\r\n`);
  }
  t.equal(await quietGone, 'end', 'the silent client was closed');
  t.equal(quietText.text().split('HTTP/1.1 ').length - 1, 1, 'with no response of ours (nothing was asked)');
  await waitFor(() => (busyText.text().match(/ok/g) ?? []).length === 9, 'all nine busy answers');
  t.notOk(busyClosed, 'the busy client was never idle long enough');
  quiet.destroy();
  busy.destroy();
});

for (const splice of ['auto', 'off'] as const) {
  t.test(`a large Content-Length response moves by ${splice === 'off' ? 'copy' : 'splice'}, intact, and its backend connection is reused`, async (t) => {
    const big = randomBytes(8 << 20);
    const want = createHash('sha256').update(big).digest('hex');
    let conns = 0;
    const srv = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-length': big.length });
      res.end(big);
    });
    srv.on('connection', () => conns++);
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    const proxy = await start({ listen: '127.0.0.1:0', backend: `127.0.0.1:${(srv.address() as net.AddressInfo).port}`, mode: 'http', workers: 1, splice, logLevel: 'silent' });
    t.teardown(async () => {
      await proxy.close(0);
      srv.close();
    });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    t.teardown(() => agent.destroy());
    for (let i = 0; i < 3; i++) {
      const sha = await new Promise<string>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port: proxy.port, path: `/big${i}`, agent }, (res) => {
          const h = createHash('sha256');
          res.on('data', (d) => h.update(d));
          res.on('end', () => resolve(h.digest('hex')));
        }).on('error', reject);
      });
      t.equal(sha, want, `response ${i} intact`);
    }
    const s = proxy.stats();
    t.equal(conns, 1, 'one backend connection for the three responses');
    t.equal(s.reused, 2);
    if (splice === 'off') t.equal(s.pipesOpen, 0, 'no pipe with splice off');
    else t.ok(s.pipesOpen > 0, 'the body went through pooled pipes');
  });
}

t.test('a full connection table in HTTP mode: 503 with Connection: close, and the held client keeps working', async (t) => {
  const proxy = await okProxy(t, { maxConnections: 1 });
  const held = rawRequest(proxy.port, 'GET /1 HTTP/1.1\r\nHost: h\r\n\r\n');
  const heldText = collect(held);
  await waitFor(() => /ok$/.test(heldText.text()), 'the held client\'s answer');
  const extra = rawRequest(proxy.port, 'GET /2 HTTP/1.1\r\nHost: h\r\n\r\n');
  const extraText = collect(extra);
  await peerDone(extra);
  t.match(extraText.text(), /^HTTP\/1\.1 503 Service Unavailable\r\n/);
  t.match(extraText.text(), /\r\nConnection: close\r\n/);
  t.equal(proxy.stats().refusedFull, 1);
  held.write('GET /3 HTTP/1.1\r\nHost: h\r\n\r\n');
  await waitFor(() => (heldText.text().match(/ok/g) ?? []).length === 2, 'the held client\'s second answer');
  held.destroy();
  extra.destroy();
});

t.test('idle clients cannot take the slots backend connections need: held clients\' requests still get through', async (t) => {
  // 18 slots (maxConnections 8), 2 kept for backends (an eighth). The backend answers after 150 ms, so the
  // three requests at the end are in flight together: one on the pooled connection, two on new ones.
  const srv = http.createServer((_req, res) => setTimeout(() => res.end('ok'), 150));
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const backend = `127.0.0.1:${(srv.address() as net.AddressInfo).port}`;
  const proxy = await start({ listen: '127.0.0.1:0', backend, mode: 'http', workers: 1, logLevel: 'silent', maxConnections: 8 });
  const held: { c: net.Socket; text: () => string }[] = [];
  t.teardown(async () => {
    for (const h of held) h.c.destroy();
    await proxy.close(0);
    srv.close();
  });
  for (;;) {
    const c = rawRequest(proxy.port, 'GET /fill HTTP/1.1\r\nHost: h\r\n\r\n');
    const got = collect(c);
    await waitFor(() => /ok$/.test(got.text()) || /^HTTP\/1\.1 503/.test(got.text()), 'an answer');
    if (/^HTTP\/1\.1 503/.test(got.text())) {
      c.destroy();
      break;
    }
    held.push({ c, text: got.text });
  }
  t.equal(held.length, proxy.capacityPerWorker - 1, 'clients up to the limit, less the pooled backend connection');
  const three = held.slice(0, 3);
  for (const h of three) h.c.write('GET /again HTTP/1.1\r\nHost: h\r\n\r\n');
  await waitFor(() => three.every((h) => (h.text().match(/ 200 OK\r\n/g) ?? []).length === 2), 'three second answers', 5000);
  t.pass('three requests in flight at once from held clients were all answered');
});

for (const splice of ['auto', 'off'] as const) {
  t.test(`a large Content-Length upload moves by ${splice === 'off' ? 'copy' : 'splice'}, intact, and a request pipelined behind it is answered after it`, async (t) => {
    const body = randomBytes(4 << 20);
    const want = createHash('sha256').update(body).digest('hex');
    const seen: { url: string; sha: string; length: number }[] = [];
    const srv = http.createServer((req, res) => {
      const h = createHash('sha256');
      let length = 0;
      req.on('data', (d: Buffer) => {
        h.update(d);
        length += d.length;
      });
      req.on('end', () => {
        seen.push({ url: req.url!, sha: h.digest('hex'), length });
        res.end(`got ${req.url}`);
      });
    });
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    const proxy = await start({ listen: '127.0.0.1:0', backend: `127.0.0.1:${(srv.address() as net.AddressInfo).port}`, mode: 'http', workers: 1, splice, logLevel: 'silent' });
    t.teardown(async () => {
      await proxy.close(0);
      srv.close();
    });
    // The head first, then the body in pieces: the proxy reads the head alone, so the whole body is left
    // to move by count. The next request follows the body's last byte in the same write.
    const c = rawRequest(proxy.port, `POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: ${body.length}\r\n\r\n`);
    const got = collect(c);
    await new Promise((r) => setTimeout(r, 50));
    for (let o = 0; o < body.length; o += 1 << 20) {
      const piece = body.subarray(o, o + (1 << 20));
      const last = o + (1 << 20) >= body.length;
      if (!c.write(last ? Buffer.concat([piece, Buffer.from('GET /after HTTP/1.1\r\nHost: h\r\n\r\n')]) : piece)) await once(c, 'drain');
    }
    await waitFor(() => /got \/up[\s\S]*got \/after$/.test(got.text()), 'both answers, in order', 20_000);
    c.destroy();
    t.same(seen.map((r) => r.url), ['/up', '/after'], 'the backend got the upload, then the pipelined request');
    t.equal(seen[0].length, body.length, 'upload length');
    t.equal(seen[0].sha, want, 'upload sha256');
    t.equal(seen[1].length, 0, 'the pipelined GET has no body: no upload byte leaked into it');
    const s = proxy.stats();
    if (splice === 'off') t.equal(s.pipesOpen, 0, 'no pipe with splice off');
    else t.ok(s.pipesOpen > 0, 'the body went through pooled pipes');
  });
}
