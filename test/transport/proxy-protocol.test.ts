// The PROXY protocol codec (HAProxy's doc/proxy-protocol.txt, v1 and v2): valid headers give the client's
// addresses and the exact header length whichever way the bytes are split; anything malformed is an
// ERROR with its reason; what the encoders write parses back to what went in.
import t from 'tap';
import { SocketAddress, isIPv6 } from 'node:net';
import {
  PP,
  PP_ERR,
  PROXY_V1_MAX,
  PROXY_V2_MAX,
  ProxyHeader,
  describeProxyHeader,
  encodeV1,
  encodeV2,
  parseProxyHeader,
} from '../../dist/transport/proxy-protocol.js';

const SIG = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

/** A v2 header: signature, version/command byte, family byte, the length (the body's unless given), body. */
function v2(verCmd: number, fam: number, body: number[] | Uint8Array, len = body.length): Buffer {
  return Buffer.concat([SIG, Buffer.from([verCmd, fam, len >> 8, len & 0xff]), Buffer.from(body)]);
}

const ipv4Block = [192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 0x01, 0xbb]; // 192.0.2.1:56324 -> 198.51.100.2:443
const ipv6Block = [
  ...[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01], // 2001:db8::1
  ...[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 7], // ::ffff:10.0.0.7
  ...[0x30, 0x39, 0x00, 0x50], // 12345 -> 80
];

type Result = Omit<ProxyHeader, never>;

/** Parses buf[start..end) into a fresh copy of the fields, and checks that the bytes were left alone. */
function parse(buf: Buffer, start = 0, end = buf.length, h = new ProxyHeader()): Result {
  const before = Buffer.from(buf);
  const status = parseProxyHeader(buf, start, end, h);
  if (status !== h.status) throw new Error('the return value is not out.status');
  if (!before.equals(buf)) throw new Error('parseProxyHeader wrote to its input');
  return { ...h };
}

const none = { srcAddr: '', srcPort: 0, dstAddr: '', dstPort: 0 };

t.test('v1 TCP4: the fields, and the payload starts right after CRLF', async (t) => {
  const head = 'PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n';
  const buf = Buffer.from(head + 'GET / HTTP/1.1\r\n\r\n');
  t.same(parse(buf), {
    status: PP.OK,
    consumed: head.length,
    version: 1,
    local: false,
    family: 'ipv4',
    srcAddr: '192.0.2.1',
    srcPort: 56324,
    dstAddr: '198.51.100.2',
    dstPort: 443,
    error: '',
  });
  t.equal(buf.toString('latin1', head.length), 'GET / HTTP/1.1\r\n\r\n');
  const edges = parse(Buffer.from('PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n'));
  t.match(edges, { status: PP.OK, srcAddr: '0.0.0.0', dstAddr: '255.255.255.255', srcPort: 0, dstPort: 65535 });
});

t.test('v1 TCP6: addresses come out in RFC 5952 form whatever form they came in', async (t) => {
  const cases: [string, string][] = [
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['::1', '::1'],
    ['::', '::'],
    ['1::', '1::'],
    ['0:0:0:0:0:ffff:c000:201', '::ffff:192.0.2.1'],
    ['::FFFF:192.0.2.1', '::ffff:192.0.2.1'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'], // the longest run of zero groups
    ['1:0:0:2:0:0:3:4', '1::2:0:0:3:4'], // the first of equal runs
    ['1:2:3:4:5:6:7:0', '1:2:3:4:5:6:7:0'], // a single zero group stays
    ['0:1:2:3:4:5:6:7', '0:1:2:3:4:5:6:7'],
    ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304'], // only ::ffff:0:0/96 is printed dotted
    ['::1.2.3.4', '::102:304'], // IPv4-compatible (deprecated): hex, where libuv would print dots
    ['ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'],
  ];
  for (const [text, want] of cases) {
    const head = `PROXY TCP6 ${text} ::2 1 2\r\n`;
    t.match(parse(Buffer.from(head)), { status: PP.OK, consumed: head.length, family: 'ipv6', srcAddr: want, dstAddr: '::2' }, text);
  }
});

t.test('v1 UNKNOWN: short and long forms; no address, use the real peer', async (t) => {
  const long = 'PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n';
  t.equal(long.length, PROXY_V1_MAX, "the spec's worst case");
  for (const head of ['PROXY UNKNOWN\r\n', 'PROXY UNKNOWN anything at all, ignored\r\n', long]) {
    t.same(parse(Buffer.from(head + 'payload')), {
      status: PP.OK,
      consumed: head.length,
      version: 1,
      local: true,
      family: null,
      ...none,
      error: '',
    });
  }
});

t.test("v1: the spec's longest TCP lines fit", async (t) => {
  const tcp4 = 'PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n';
  const full6 = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe';
  const tcp6 = `PROXY TCP6 ${full6} ${full6} 65535 65535\r\n`;
  t.equal(tcp4.length, 56);
  t.equal(tcp6.length, 104);
  t.match(parse(Buffer.from(tcp4)), { status: PP.OK, consumed: 56, srcAddr: '255.255.255.255' });
  t.match(parse(Buffer.from(tcp6)), { status: PP.OK, consumed: 104, srcAddr: full6, dstAddr: full6 });
});

t.test('v2 PROXY over TCP/IPv4 and TCP/IPv6', async (t) => {
  const four = v2(0x21, 0x11, ipv4Block);
  t.same(parse(Buffer.concat([four, Buffer.from('payload')])), {
    status: PP.OK,
    consumed: 28,
    version: 2,
    local: false,
    family: 'ipv4',
    srcAddr: '192.0.2.1',
    srcPort: 56324,
    dstAddr: '198.51.100.2',
    dstPort: 443,
    error: '',
  });
  const six = v2(0x21, 0x21, ipv6Block);
  t.same(parse(six), {
    status: PP.OK,
    consumed: 52,
    version: 2,
    local: false,
    family: 'ipv6',
    srcAddr: '2001:db8::1',
    srcPort: 12345,
    dstAddr: '::ffff:10.0.0.7',
    dstPort: 80,
    error: '',
  });
});

t.test('v2 TLVs after the address block are skipped and counted in the header', async (t) => {
  const tlvs = [
    ...[0x02, 0x00, 0x0b, ...Buffer.from('example.com')], // PP2_TYPE_AUTHORITY
    ...[0x04, 0x00, 0x00], // PP2_TYPE_NOOP, empty
    ...[0xea, 0x00, 0x03, 1, 2, 3], // a vendor TLV (AWS uses 0xEA)
  ];
  const head = v2(0x21, 0x11, [...ipv4Block, ...tlvs]);
  t.equal(head.length, 16 + 12 + 14 + 3 + 6);
  const buf = Buffer.concat([head, Buffer.from('\r\n\r\nQUIT')]); // a payload that looks like a signature
  t.match(parse(buf), { status: PP.OK, consumed: head.length, family: 'ipv4', srcAddr: '192.0.2.1', dstPort: 443 });
  t.match(parse(v2(0x21, 0x21, [...ipv6Block, 0x04, 0x00, 0x01, 0])), { status: PP.OK, consumed: 56, srcAddr: '2001:db8::1' });
});

t.test('v2 LOCAL and the families that are not TCP: OK, local, no address', async (t) => {
  const local = { status: PP.OK, version: 2, local: true, family: null, ...none, error: '' };
  t.same(parse(v2(0x20, 0x00, [])), { ...local, consumed: 16 });
  // LOCAL: the spec says the whole block, family included, is ignored, whatever the length says.
  t.same(parse(v2(0x20, 0x11, ipv4Block)), { ...local, consumed: 28 });
  t.same(parse(v2(0x20, 0x99, [1, 2, 3])), { ...local, consumed: 19 });
  // PROXY with UNSPEC: the receiver should ignore the address information (any shape, not parsed).
  t.same(parse(v2(0x21, 0x00, [])), { ...local, consumed: 16 });
  t.same(parse(v2(0x21, 0x00, [0, 0, 9, 9, 9])), { ...local, consumed: 21 });
  // UDP and unix: valid in v2, but not an address a TCP peer can have; the spec's fallback is UNSPEC.
  for (const [fam, size] of [
    [0x12, 12],
    [0x22, 36],
    [0x31, 216],
    [0x32, 216],
  ]) {
    t.same(parse(v2(0x21, fam, new Uint8Array(size).fill(7))), { ...local, consumed: 16 + size }, `family 0x${fam.toString(16)}`);
  }
  t.same(parse(v2(0x21, 0x31, [...new Uint8Array(216), 0x04, 0x00, 0x00])), { ...local, consumed: 16 + 219 });
});

const valid: [string, Buffer][] = [
  ['v1 TCP4', Buffer.from('PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n')],
  ['v1 TCP6', Buffer.from('PROXY TCP6 2001:db8::1 ::ffff:10.0.0.7 12345 80\r\n')],
  ['v1 UNKNOWN', Buffer.from('PROXY UNKNOWN\r\n')],
  ['v1 UNKNOWN long', Buffer.from('PROXY UNKNOWN 1 2 3\r\n')],
  ['v2 IPv4', v2(0x21, 0x11, ipv4Block)],
  ['v2 IPv6 + TLV', v2(0x21, 0x21, [...ipv6Block, 0x04, 0x00, 0x02, 0, 0])],
  ['v2 LOCAL', v2(0x20, 0x00, [])],
  ['v2 unix', v2(0x21, 0x31, new Uint8Array(216))],
];

t.test('split anywhere: NEED_MORE on every proper prefix, then the same OK, at any start offset', async (t) => {
  const payload = Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
  for (const [name, head] of valid) {
    const whole = parse(head);
    t.equal(whole.status, PP.OK, name);
    t.equal(whole.consumed, head.length, `${name}: consumed is the header exactly`);
    // Some bytes before `start` (as in a shared buffer), then the header, then a payload.
    const junk = Buffer.from('\r\nPROXY junk');
    const buf = Buffer.concat([junk, head, payload]);
    const s = junk.length;
    const h = new ProxyHeader();
    let early = 0;
    for (let end = s; end < s + head.length; end++) {
      if (parse(buf, s, end, h).status !== PP.NEED_MORE) early++;
    }
    t.equal(early, 0, `${name}: every prefix needs more`);
    t.same(parse(buf, s, s + head.length, h), whole, `${name}: exactly the header`);
    t.same(parse(buf, s, buf.length, h), whole, `${name}: with the payload after it`);
    t.equal(buf.subarray(s + whole.consumed).toString('latin1'), payload.toString('latin1'));
  }
});

t.test('round trips: what encodeV1 and encodeV2 write parses back to the same client', async (t) => {
  const cases: [string, string, number, string, number, string, string][] = [
    // family, src, sport, dst, dport, canonical src, canonical dst
    ['ipv4', '192.0.2.1', 56324, '198.51.100.2', 443, '192.0.2.1', '198.51.100.2'],
    ['ipv4', '0.0.0.0', 0, '255.255.255.255', 65535, '0.0.0.0', '255.255.255.255'],
    ['ipv6', '::1', 1, '::', 2, '::1', '::'],
    ['ipv6', '2001:DB8:0:0:1:0:0:1', 65535, '::ffff:127.0.0.1', 8080, '2001:db8::1:0:0:1', '::ffff:127.0.0.1'],
    ['ipv6', 'fe80::a:b:c:d', 40000, '2001:db8:85a3::8a2e:370:7334', 443, 'fe80::a:b:c:d', '2001:db8:85a3::8a2e:370:7334'],
  ];
  const out = Buffer.alloc(256);
  for (const [family, src, sport, dst, dport, wantSrc, wantDst] of cases) {
    for (const [v, enc] of [
      [1, encodeV1],
      [2, encodeV2],
    ] as const) {
      const n = enc(out, 5, family, src, sport, dst, dport);
      t.ok(n > 0, `v${v} ${src}: written`);
      t.same(
        parse(out, 5, 5 + n + 10),
        {
          status: PP.OK,
          consumed: n,
          version: v,
          local: false,
          family,
          srcAddr: wantSrc,
          srcPort: sport,
          dstAddr: wantDst,
          dstPort: dport,
          error: '',
        },
        `v${v} ${family} ${src} -> ${dst}`,
      );
    }
  }
});

/** A deterministic generator, so a failure can be reproduced. */
function rng(seed: number): () => number {
  let x = seed;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

t.test("random IPv6 addresses: v2 carries the exact bytes and both versions print them as Node's net does", async (t) => {
  const rand = rng(20240611);
  const out = Buffer.alloc(128);
  let bad = 0;
  let checked = 0;
  for (let k = 0; k < 3000; k++) {
    // Mostly-zero groups, so that "::" runs of every length and position turn up.
    const words = Array.from({ length: 8 }, () => (rand() < 0.5 ? 0 : rand() < 0.3 ? 0xffff : Math.floor(rand() * 0x10000)));
    if (rand() < 0.1) words.splice(0, 6, 0, 0, 0, 0, 0, 0xffff); // IPv4-mapped
    const plain = words.map((w) => w.toString(16)).join(':');
    // libuv prints ::a.b.c.d (IPv4-compatible, deprecated) dotted; RFC 5952 does not: skip it from the oracle.
    const compat = words.slice(0, 6).every((w) => w === 0) && words[6] !== 0;
    const want = compat ? null : new SocketAddress({ address: plain, family: 'ipv6' }).address;
    const n2 = encodeV2(out, 0, 'ipv6', plain, 1, '::1', 2);
    const bytes = Buffer.from(words.flatMap((w) => [w >> 8, w & 0xff]));
    if (!out.subarray(16, 32).equals(bytes)) bad++;
    const r2 = parse(out, 0, n2);
    const n1 = encodeV1(out, 0, 'ipv6', plain, 1, '::1', 2);
    const r1 = parse(out, 0, n1);
    if (r1.srcAddr !== r2.srcAddr || r1.status !== PP.OK || r2.status !== PP.OK) bad++;
    if (want !== null) {
      checked++;
      if (r2.srcAddr !== want) {
        bad++;
        t.equal(r2.srcAddr, want, plain);
      }
    }
  }
  t.equal(bad, 0, 'no mismatch');
  t.ok(checked > 2000, `${checked} compared with SocketAddress`);
});

t.test('v1 TCP6 accepts exactly what node:net isIPv6 accepts (zone ids aside)', async (t) => {
  const fixed = [
    '1:2:3:4:5:6:7:8::',
    '::1:2:3:4:5:6:7:8',
    '1::2::3',
    '12345::',
    ':1::',
    '1:',
    ':',
    ':::',
    '1::1.2.3.4',
    '::1.2.3',
    '::1.2.3.04',
    '::256.1.1.1',
    '1:2:3:4:5:6:1.2.3.4',
    '1:2:3:4:5:6:7:1.2.3.4',
    '1:2:3:4:5:6::1.2.3.4',
    '1:2:3:4:5::1.2.3.4',
    '::ffff:1.2.3.4:1',
    '::ffff:1.2.3.4.',
    '::.1.2.3',
    'g::',
    '1:2:3:4:5:6:7',
    '1:2:3:4:5:6::7:8',
    '1:2:3:4:5:6:7::',
    '::2:3:4:5:6:7:8',
    '0000::',
    '::00001',
    '1.2.3.4',
  ];
  const rand = rng(7);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)];
  const generated: string[] = [];
  for (let k = 0; k < 5000; k++) {
    let s = pick(['', '', ':', '::']);
    const groups = Math.floor(rand() * 10);
    for (let g = 0; g < groups; g++) {
      if (g > 0) s += pick([':', ':', ':', ':', '::', ':::', '']);
      s += Array.from({ length: pick([0, 1, 1, 2, 4, 4, 5]) }, () => pick([...'0123456789abcdefABCDEFg'])).join('');
    }
    if (rand() < 0.3) {
      s += pick([':', '', '::']);
      s += Array.from({ length: pick([3, 4, 4, 4, 5]) }, () => pick(['0', '1', '01', '255', '256', '99', '', '1000'])).join('.');
    }
    s += pick(['', '', '', ':', '::']);
    generated.push(s);
  }
  let mismatches = 0;
  let accepted = 0;
  for (const text of [...fixed, ...generated]) {
    const line = `PROXY TCP6 ${text} ::1 1 2\r\n`;
    if (text === '' || line.length > PROXY_V1_MAX) continue; // too long to be about the address
    const r = parse(Buffer.from(line));
    const want = isIPv6(text);
    if (want) accepted++;
    if ((r.status === PP.OK) !== want || (!want && r.error !== PP_ERR.V1_SRC_ADDR)) {
      mismatches++;
      t.fail(`${JSON.stringify(text)}: isIPv6 says ${want}, we say ${r.status} ${r.error}`);
    }
  }
  t.equal(mismatches, 0);
  t.ok(accepted > 200, `${accepted} valid addresses among the cases`);
});

t.test('malformed headers: ERROR, with the reason, and nothing consumed', async (t) => {
  const cap = PROXY_V2_MAX - 16;
  const cases: [string, Buffer | string, string][] = [
    ['HTTP instead', 'GET / HTTP/1.1\r\n', PP_ERR.NOT_PROXY],
    ['TLS instead', Buffer.from([0x16, 0x03, 0x01, 0x00]), PP_ERR.NOT_PROXY],
    ['"PROXY" misspelt', 'PROXZ TCP4', PP_ERR.NOT_PROXY],
    ['"PROXY" then no space', 'PROXY\tTCP4', PP_ERR.NOT_PROXY],
    ['v2 signature with one byte wrong', Buffer.concat([SIG.subarray(0, 7), Buffer.from('quit\n')]), PP_ERR.NOT_PROXY],
    ['v2 signature, NUL missing', '\r\n\r\n\r\n', PP_ERR.NOT_PROXY],
    ['double space after PROXY', 'PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n', PP_ERR.V1_PROTOCOL],
    ['lower-case protocol', 'PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n', PP_ERR.V1_PROTOCOL],
    ['TCP5', 'PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n', PP_ERR.V1_PROTOCOL],
    ['UDP4', 'PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n', PP_ERR.V1_PROTOCOL],
    ['UNKNOWN glued to more', 'PROXY UNKNOWNX\r\n', PP_ERR.V1_PROTOCOL],
    ['no protocol', 'PROXY \r\n', PP_ERR.V1_PROTOCOL],
    ['HTTP after PROXY', 'PROXY GET / HTTP/1.1\r\n', PP_ERR.V1_PROTOCOL],
    ['TCP4, no addresses', 'PROXY TCP4\r\n', PP_ERR.V1_PROTOCOL],
    ['double space after TCP4', 'PROXY TCP4  1.2.3.4 5.6.7.8 1\r\n', PP_ERR.V1_FIELDS],
    ['double space between addresses', 'PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n', PP_ERR.V1_FIELDS],
    ['space before CRLF', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n', PP_ERR.V1_FIELDS],
    ['three fields', 'PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n', PP_ERR.V1_FIELDS],
    ['five fields', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n', PP_ERR.V1_FIELDS],
    ['tab for a space', 'PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n', PP_ERR.V1_FIELDS],
    ['TCP4 then only a space', 'PROXY TCP4 \r\n', PP_ERR.V1_FIELDS],
    ['octet with a leading zero', 'PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n', PP_ERR.V1_SRC_ADDR],
    ['octet 256', 'PROXY TCP4 1.2.3.4 5.6.7.256 1 2\r\n', PP_ERR.V1_DST_ADDR],
    ['three octets', 'PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n', PP_ERR.V1_SRC_ADDR],
    ['five octets', 'PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n', PP_ERR.V1_SRC_ADDR],
    ['empty octet', 'PROXY TCP4 1..3.4 5.6.7.8 1 2\r\n', PP_ERR.V1_SRC_ADDR],
    ['four-digit octet', 'PROXY TCP4 1.2.3.0255 5.6.7.8 1 2\r\n', PP_ERR.V1_SRC_ADDR],
    ['TCP4 with IPv6 addresses', 'PROXY TCP4 ::1 ::2 1 2\r\n', PP_ERR.V1_SRC_ADDR],
    ['TCP4 with an IPv6 destination', 'PROXY TCP4 1.2.3.4 ::ffff:1.2.3.4 1 2\r\n', PP_ERR.V1_DST_ADDR],
    ['TCP6 with IPv4 addresses', 'PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n', PP_ERR.V1_SRC_ADDR],
    ['TCP6 with a zone id', 'PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n', PP_ERR.V1_SRC_ADDR],
    ['TCP6 with a bad destination', 'PROXY TCP6 ::1 1::2::3 1 2\r\n', PP_ERR.V1_DST_ADDR],
    ['TCP6 in brackets', 'PROXY TCP6 [::1] ::1 1 2\r\n', PP_ERR.V1_SRC_ADDR],
    ['port with a leading zero', 'PROXY TCP4 1.2.3.4 5.6.7.8 080 443\r\n', PP_ERR.V1_SRC_PORT],
    ['port 00', 'PROXY TCP4 1.2.3.4 5.6.7.8 80 00\r\n', PP_ERR.V1_DST_PORT],
    ['port 65536', 'PROXY TCP4 1.2.3.4 5.6.7.8 80 65536\r\n', PP_ERR.V1_DST_PORT],
    ['port 100000', 'PROXY TCP4 1.2.3.4 5.6.7.8 100000 80\r\n', PP_ERR.V1_SRC_PORT],
    ['signed port', 'PROXY TCP4 1.2.3.4 5.6.7.8 +80 443\r\n', PP_ERR.V1_SRC_PORT],
    ['negative port', 'PROXY TCP4 1.2.3.4 5.6.7.8 80 -1\r\n', PP_ERR.V1_DST_PORT],
    ['hex port', 'PROXY TCP4 1.2.3.4 5.6.7.8 0x50 443\r\n', PP_ERR.V1_SRC_PORT],
    ['LF only', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n', PP_ERR.V1_BARE_LF],
    ['LF only after UNKNOWN', 'PROXY UNKNOWN\n', PP_ERR.V1_BARE_LF],
    ['CR then not LF', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX', PP_ERR.V1_BARE_CR],
    ['CR inside the line', 'PROXY UNKNOWN a\rb\r\n', PP_ERR.V1_BARE_CR],
    ['107 bytes, no CRLF', 'PROXY UNKNOWN ' + 'a'.repeat(93), PP_ERR.V1_TOO_LONG],
    ['CRLF as bytes 107 and 108', 'PROXY UNKNOWN ' + 'a'.repeat(92) + '\r\n', PP_ERR.V1_TOO_LONG],
    ['an endless TCP4 line', 'PROXY TCP4 ' + '1'.repeat(200), PP_ERR.V1_TOO_LONG],
    ['v2 version 1', v2(0x11, 0x11, ipv4Block), PP_ERR.V2_VERSION],
    ['v2 version 3', v2(0x31, 0x11, ipv4Block), PP_ERR.V2_VERSION],
    ['v2 version 0', v2(0x01, 0x11, ipv4Block), PP_ERR.V2_VERSION],
    ['v2 command 2', v2(0x22, 0x11, ipv4Block), PP_ERR.V2_COMMAND],
    ['v2 command 15', v2(0x2f, 0x11, ipv4Block), PP_ERR.V2_COMMAND],
    ['v2 family 4', v2(0x21, 0x41, ipv4Block), PP_ERR.V2_FAMILY],
    ['v2 transport 3', v2(0x21, 0x13, ipv4Block), PP_ERR.V2_FAMILY],
    ['v2 INET with UNSPEC transport', v2(0x21, 0x10, ipv4Block), PP_ERR.V2_FAMILY],
    ['v2 UNSPEC family with STREAM', v2(0x21, 0x01, []), PP_ERR.V2_FAMILY],
    ['v2 IPv4, length 11', v2(0x21, 0x11, ipv4Block.slice(0, 11)), PP_ERR.V2_SHORT],
    ['v2 IPv4, length 0', v2(0x21, 0x11, []), PP_ERR.V2_SHORT],
    ['v2 IPv6, length of an IPv4 block', v2(0x21, 0x21, ipv4Block), PP_ERR.V2_SHORT],
    ['v2 unix, length 215', v2(0x21, 0x31, new Uint8Array(215)), PP_ERR.V2_SHORT],
    ['v2 length one over the cap', v2(0x21, 0x11, new Uint8Array(cap + 1)), PP_ERR.V2_TOO_LONG],
    ['v2 length 65535, only the fixed part sent', v2(0x21, 0x11, [], 0xffff), PP_ERR.V2_TOO_LONG],
    ['v2 LOCAL over the cap', v2(0x20, 0x00, [], cap + 1), PP_ERR.V2_TOO_LONG],
    ['v2 two stray bytes after the addresses', v2(0x21, 0x11, [...ipv4Block, 0x04, 0x00]), PP_ERR.V2_TLV],
    ['v2 TLV longer than the header', v2(0x21, 0x11, [...ipv4Block, 0x02, 0x00, 0x05, 1, 2, 3]), PP_ERR.V2_TLV],
    ['v2 second TLV past the end', v2(0x21, 0x21, [...ipv6Block, 0x04, 0x00, 0x00, 0x04, 0x00, 0x01]), PP_ERR.V2_TLV],
  ];
  for (const [name, input, reason] of cases) {
    const buf = typeof input === 'string' ? Buffer.from(input, 'latin1') : input;
    const r = parse(buf);
    t.same({ status: r.status, error: r.error, consumed: r.consumed }, { status: PP.ERROR, error: reason, consumed: 0 }, name);
  }
});

t.test('the longest cases that are still fine', async (t) => {
  const v1 = 'PROXY UNKNOWN ' + 'a'.repeat(91) + '\r\n';
  t.equal(v1.length, PROXY_V1_MAX);
  t.match(parse(Buffer.from(v1)), { status: PP.OK, consumed: PROXY_V1_MAX, local: true });
  t.equal(parse(Buffer.from(v1.slice(0, -1))).status, PP.NEED_MORE, 'the CR is byte 106: its LF may come');
  const tlv = PROXY_V2_MAX - 16 - 12 - 3;
  const big = v2(0x21, 0x11, [...ipv4Block, 0xe0, tlv >> 8, tlv & 0xff, ...new Uint8Array(tlv)]);
  t.equal(big.length, PROXY_V2_MAX);
  t.match(parse(big), { status: PP.OK, consumed: PROXY_V2_MAX, srcAddr: '192.0.2.1' });
});

t.test('a bad header fails as soon as its bytes show it, without waiting for the rest', async (t) => {
  const cases: [string, Buffer, number, string][] = [
    // name, header, how many bytes show the fault, reason
    ['not a signature', Buffer.from('GET /'), 1, PP_ERR.NOT_PROXY],
    ['"PROXY" broken at byte 4', Buffer.from('PROXZ'), 5, PP_ERR.NOT_PROXY],
    ['v2 signature broken at byte 12', Buffer.concat([SIG.subarray(0, 11), Buffer.from('X')]), 12, PP_ERR.NOT_PROXY],
    ['v1 protocol', Buffer.from('PROXY TCX4 1.2.3.4'), 9, PP_ERR.V1_PROTOCOL],
    ['v1 UNKNOWN glued', Buffer.from('PROXY UNKNOWNS'), 14, PP_ERR.V1_PROTOCOL],
    ['v1 LF', Buffer.from('PROXY TCP4 1.2.3.4\n'), 19, PP_ERR.V1_BARE_LF],
    ['v2 version', v2(0x11, 0x11, ipv4Block), 13, PP_ERR.V2_VERSION],
    ['v2 command', v2(0x23, 0x11, ipv4Block), 13, PP_ERR.V2_COMMAND],
    ['v2 family', v2(0x21, 0x51, ipv4Block), 14, PP_ERR.V2_FAMILY],
    ['v2 length over the cap', v2(0x21, 0x11, [], 60000), 16, PP_ERR.V2_TOO_LONG],
    ['v2 length under the block', v2(0x21, 0x21, new Uint8Array(20)), 16, PP_ERR.V2_SHORT],
  ];
  for (const [name, buf, at, reason] of cases) {
    t.equal(parse(buf, 0, at - 1).status, PP.NEED_MORE, `${name}: ${at - 1} bytes`);
    t.match(parse(buf, 0, at), { status: PP.ERROR, error: reason }, `${name}: ${at} bytes`);
  }
});

t.test('nothing yet, or a partial signature: NEED_MORE, not an error', async (t) => {
  t.same(parse(Buffer.alloc(0)), { status: PP.NEED_MORE, consumed: 0, version: 0, local: false, family: null, ...none, error: '' });
  t.equal(parse(Buffer.from('PROX')).status, PP.NEED_MORE);
  t.equal(parse(Buffer.from('PROXY TCP')).status, PP.NEED_MORE);
  t.equal(parse(Buffer.from('PROXY TCP6 ::1 ::1 1 2\r')).status, PP.NEED_MORE);
  t.equal(parse(SIG.subarray(0, 5)).status, PP.NEED_MORE);
  t.equal(parse(v2(0x21, 0x11, ipv4Block).subarray(0, 27)).status, PP.NEED_MORE);
  t.equal(parse(Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nrest'), 0, 10).version, 1, 'the version is known early');
});

t.test('one ProxyHeader reused: each call starts afresh', async (t) => {
  const h = new ProxyHeader();
  parse(Buffer.from('PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n'), 0, undefined, h);
  t.equal(h.srcAddr, '192.0.2.1');
  parse(Buffer.from('PROXY TCP4 192.0.2.1 198.51.100.2 56324 65536\r\n'), 0, undefined, h);
  t.same({ ...h }, { status: PP.ERROR, consumed: 0, version: 1, local: false, family: null, ...none, error: PP_ERR.V1_DST_PORT });
  parse(v2(0x20, 0x00, []), 0, undefined, h);
  t.match(h, { status: PP.OK, local: true, version: 2, error: '', srcAddr: '' });
  parse(Buffer.from('PROXY'), 0, undefined, h);
  t.match(h, { status: PP.NEED_MORE, local: false, version: 0, consumed: 0 });
});

t.test('encoders: the exact bytes', async (t) => {
  const out = Buffer.alloc(128);
  let n = encodeV1(out, 0, 'ipv4', '192.0.2.1', 56324, '198.51.100.2', 443);
  t.equal(out.toString('latin1', 0, n), 'PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n');
  n = encodeV1(out, 0, 'ipv6', '2001:0DB8::0001', 1, '0:0:0:0:0:ffff:7f00:1', 0);
  t.equal(out.toString('latin1', 0, n), 'PROXY TCP6 2001:db8::1 ::ffff:127.0.0.1 1 0\r\n', 'IPv6 in RFC 5952 form');
  const full = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
  t.equal(encodeV1(out, 0, 'ipv6', full, 65535, full, 65535), 104, "the spec's longest TCP6 line");
  n = encodeV2(out, 0, 'ipv4', '192.0.2.1', 56324, '198.51.100.2', 443);
  t.equal(out.subarray(0, n).toString('hex'), SIG.toString('hex') + '2111000c' + 'c0000201' + 'c6336402' + 'dc04' + '01bb');
  n = encodeV2(out, 0, 'ipv6', '2001:db8::1', 12345, '::ffff:10.0.0.7', 80);
  t.equal(out.subarray(0, n).toString('hex'), v2(0x21, 0x21, ipv6Block).toString('hex'));
  for (const family of ['unix', null, 'ipv5']) {
    n = encodeV1(out, 0, family, '/run/x.sock', 0, '', 0);
    t.equal(out.toString('latin1', 0, n), 'PROXY UNKNOWN\r\n', `v1, family ${family}`);
    n = encodeV2(out, 0, family, '/run/x.sock', 0, '', 0);
    t.equal(out.subarray(0, n).toString('hex'), SIG.toString('hex') + '20000000', `v2 LOCAL UNSPEC, family ${family}`);
  }
});

t.test('encoders: at the offset given, -1 and nothing written when the header does not fit', async (t) => {
  const out = Buffer.alloc(40, 0xaa);
  const n = encodeV2(out, 12, 'ipv4', '10.0.0.1', 1, '10.0.0.2', 2);
  t.equal(n, 28);
  t.ok(out.subarray(0, 12).every((b) => b === 0xaa), 'bytes before the offset untouched');
  t.ok(out.subarray(12, 24).equals(SIG));
  const small = Buffer.alloc(27, 0xaa);
  t.equal(encodeV2(small, 0, 'ipv4', '10.0.0.1', 1, '10.0.0.2', 2), -1);
  t.equal(encodeV2(Buffer.alloc(40), 13, 'ipv4', '10.0.0.1', 1, '10.0.0.2', 2), -1, 'the offset counts');
  const line = 'PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\n';
  t.equal(encodeV1(small, 0, 'ipv4', '10.0.0.1', 1, '10.0.0.2', 2), -1, `${line.length} bytes in 27`);
  t.equal(encodeV1(Buffer.alloc(14), 0, 'unix', '', 0, '', 0), -1);
  t.equal(encodeV1(Buffer.alloc(15), 0, 'unix', '', 0, '', 0), 15);
  t.ok(small.every((b) => b === 0xaa), 'a failed write leaves the buffer as it was');
});

t.test('encoders: an address or port that is not valid for the family throws RangeError', async (t) => {
  const out = Buffer.alloc(128);
  const bad: [string, string, number, string, number][] = [
    ['ipv4', '::1', 1, '10.0.0.1', 2],
    ['ipv4', '10.0.0.1', 1, '10.0.0.256', 2],
    ['ipv4', '010.0.0.1', 1, '10.0.0.1', 2],
    ['ipv4', 'localhost', 1, '10.0.0.1', 2],
    ['ipv6', '10.0.0.1', 1, '::1', 2],
    ['ipv6', 'fe80::1%eth0', 1, '::1', 2],
    ['ipv6', '::1', 1, '1::2::3', 2],
    ['ipv6', '::\u0131', 1, '::1', 2], // not ASCII: must not be read as '::1'
    ['ipv6', ':'.repeat(46), 1, '::1', 2],
    ['ipv4', '10.0.0.1', 65536, '10.0.0.2', 2],
    ['ipv4', '10.0.0.1', 1, '10.0.0.2', -1],
    ['ipv4', '10.0.0.1', 1.5, '10.0.0.2', 2],
    ['ipv6', '::1', NaN, '::2', 2],
  ];
  for (const [family, src, sport, dst, dport] of bad) {
    const name = `${family} ${src}:${sport} -> ${dst}:${dport}`;
    t.throws(() => encodeV1(out, 0, family, src, sport, dst, dport), RangeError, `v1 ${name}`);
    t.throws(() => encodeV2(out, 0, family, src, sport, dst, dport), RangeError, `v2 ${name}`);
  }
});

t.test('describeProxyHeader: one line for the log', async (t) => {
  const h = new ProxyHeader();
  parseProxyHeader(Buffer.from('PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n'), 0, 45, h);
  t.equal(describeProxyHeader(h), 'PROXY v1 192.0.2.1:56324 -> 198.51.100.2:443');
  const six = v2(0x21, 0x21, ipv6Block);
  parseProxyHeader(six, 0, six.length, h);
  t.equal(describeProxyHeader(h), 'PROXY v2 [2001:db8::1]:12345 -> [::ffff:10.0.0.7]:80');
  parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n'), 0, 15, h);
  t.equal(describeProxyHeader(h), 'PROXY v1 local');
  parseProxyHeader(Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n'), 0, 31, h);
  t.equal(describeProxyHeader(h), 'PROXY error: v1: LF without CR');
  parseProxyHeader(Buffer.from('PROXY'), 0, 5, h);
  t.equal(describeProxyHeader(h), 'PROXY incomplete');
});
