// epoll_event layout (12 bytes packed on x86-64, 16 on arm64) checked against the kernel: register an
// eventfd tagged with (slot, generation), make it readable, and decode what epoll_wait wrote.
import t from 'tap';
import { arch } from 'node:process';
import { EPOLL_EVENT_SIZE, EventBuffer, epollAdd, epollCreate } from '../../dist/sys/epoll.js';
import { EPOLL } from '../../dist/sys/constants.js';
import { close, epollCtl, epollWait, read, errnoName } from '../../dist/sys/libc.js';
import { createEventfd, signalEventfd } from '../../dist/sys/setup.js';

t.test('epoll_event size matches the architecture', async (t) => {
  t.equal(EPOLL_EVENT_SIZE, arch === 'arm64' ? 16 : 12);
});

t.test('epoll_wait returns our (slot, gen) tag and the event bits, edge-triggered', async (t) => {
  const ep = epollCreate();
  const efd = createEventfd();
  const ev = new EventBuffer(8);
  t.teardown(() => {
    close(efd);
    close(ep);
  });
  t.equal(epollAdd(ep, efd, (EPOLL.IN | EPOLL.ET) >>> 0, 123456, 0xfffffffe), 0);
  t.equal(epollWait(ep, ev.bytes, ev.max, 0), 0, 'nothing ready yet');

  signalEventfd(efd);
  t.equal(epollWait(ep, ev.bytes, ev.max, 1000), 1);
  t.equal(ev.slot(0), 123456);
  t.equal(ev.gen(0), 0xfffffffe, 'the full 32-bit generation survives');
  t.ok(ev.events(0) & EPOLL.IN);

  // Edge-triggered: no new event until the state changes again, even though the counter is unread.
  t.equal(epollWait(ep, ev.bytes, ev.max, 0), 0, 'edge-triggered: one event per change');
  const b = Buffer.alloc(8);
  t.equal(read(efd, b, 8), 8);
  t.equal(b.readBigUInt64LE(0), 1n);
  t.equal(errnoName(read(efd, b, 8)), 'EAGAIN', 'a drained non-blocking eventfd says EAGAIN');
  t.equal(epollCtl(ep, EPOLL.CTL_DEL, efd, null), 0, 'and the registration can be removed');
});

t.test('a second registration of the same fd is refused with -EEXIST', async (t) => {
  const ep = epollCreate();
  const efd = createEventfd();
  t.teardown(() => {
    close(efd);
    close(ep);
  });
  t.equal(epollAdd(ep, efd, EPOLL.IN, 1, 1), 0);
  t.equal(errnoName(epollAdd(ep, efd, EPOLL.IN, 1, 1)), 'EEXIST');
});
