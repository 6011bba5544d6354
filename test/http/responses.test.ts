// Every generated response is a valid HTTP/1.1 message (checked by llhttp itself), with its body length
// right, and says Connection: close, as the proxy closes after each.
import t from 'tap';
import { GENERATED, generated, type GeneratedStatus } from '../../dist/http/responses.js';
import { HttpParser, PEV } from '../../dist/http/parser.js';
import { PARSER_TYPE } from '../../dist/http/parser-t.js';

for (const status of Object.keys(GENERATED).map(Number) as GeneratedStatus[]) {
  t.test(`${status}`, async (t) => {
    {
      const bytes = generated(status);
      const p = new HttpParser(PARSER_TYPE.RESPONSE);
      let ev = p.execute(bytes);
      t.ok(ev & PEV.HEADERS, 'the head parses');
      t.equal(p.statusCode, status);
      const head = p.consumed;
      if (!(ev & PEV.MESSAGE)) ev = p.execute(bytes.subarray(head));
      t.ok(ev & PEV.MESSAGE, 'the message completes');
      t.equal(head + p.consumed, bytes.length, 'Content-Length matches the body exactly');
      t.equal(p.shouldKeepAlive(), false, 'Connection: close');
      t.match(bytes.toString('latin1', head), new RegExp(`^${status} ${GENERATED[status][0]}: `), 'the body names the status');
    }
  });
}

t.test('100 Continue is a bare interim response', async (t) => {
  const CONTINUE_100 = Buffer.from('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
  const p = new HttpParser(PARSER_TYPE.RESPONSE);
  t.equal(p.execute(CONTINUE_100), PEV.HEADERS | PEV.MESSAGE, 'a head that is a whole message: no body');
  t.equal(p.statusCode, 100);
  t.equal(p.consumed, CONTINUE_100.length, 'the head is all of it');
});
