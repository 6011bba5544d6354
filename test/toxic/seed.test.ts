// --seed: the same seed gives the same draws. A toxic with toxicity 0.5 that closes a connection at its
// first byte (limit_data 0) acts on some connections and not others; with one worker and the same seed, the
// same connections in the same order get the same draws, in a new server.
import t from 'tap';
import net from 'node:net';
import { toxiproxy } from '../../dist/index.js';
import { echoServer } from '../helpers/net.js';

const echo = await echoServer();
t.teardown(() => echo.close());

/** For 24 connections one after another: 1 when the toxic acted (closed at the first byte), 0 when echoed. */
async function pattern(seed: number): Promise<string> {
  const server = await toxiproxy({ port: 0, seed, logLevel: 'silent' });
  try {
    const post = (path: string, body: unknown) => fetch(`${server.url}${path}`, { method: 'POST', body: JSON.stringify(body) }).then((r) => r.json());
    const p: any = await post('/proxies', { name: 'p', listen: '127.0.0.1:0', upstream: `127.0.0.1:${echo.port}` });
    await post('/proxies/p/toxics', { type: 'limit_data', toxicity: 0.5, attributes: { bytes: 0 } });
    const port = Number(String(p.listen).split(':')[1]);
    let out = '';
    for (let i = 0; i < 24; i++) {
      out += await new Promise<string>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => s.write('x'));
        s.on('data', () => {
          s.destroy();
          resolve('0');
        });
        s.on('end', () => resolve('1'));
        s.on('error', () => resolve('1'));
      });
    }
    return out;
  } finally {
    await server.close();
  }
}

t.test('the same seed, the same draws; another seed, others', async (t) => {
  const a = await pattern(42);
  const b = await pattern(42);
  const c = await pattern(7);
  t.equal(a, b, `seed 42 twice: ${a}`);
  t.match(a, /0/, 'some connections were spared');
  t.match(a, /1/, 'and some cut');
  t.not(c, a, `seed 7 draws otherwise: ${c}`);
});
