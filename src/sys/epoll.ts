// struct epoll_event as the kernel lays it out:
//
//   struct epoll_event { uint32_t events; epoll_data_t data; }   // data is a 64-bit union
//
// On x86-64 the uapi header declares it __attribute__((packed)) (EPOLL_PACKED), so data sits at offset 4
// and the struct is 12 bytes. On arm64 it is naturally aligned: data at offset 8, 16 bytes.
//
// We put two u32s in `data`: the connection-table slot (low half) and that slot's generation (high half),
// so an event for a slot that was released and reused since the kernel queued it is recognised and dropped.

import { arch } from 'node:process';
import { EPOLL } from './constants.js';
import { CODES, ProxyError, check } from './errors.js';
import { epollCtl, raw, errno } from './libc.js';

function layout(): { size: number; dataOffset: number } {
  if (arch === 'x64') return { size: 12, dataOffset: 4 };
  if (arch === 'arm64') return { size: 16, dataOffset: 8 };
  throw new ProxyError(CODES.UNSUPPORTED_PLATFORM, `ffi-proxy knows the epoll_event layout of x64 and arm64, not ${arch}`);
}

export const EPOLL_EVENT_SIZE = layout().size;
export const EPOLL_DATA_OFFSET = layout().dataOffset;

/** Reads a batch that epoll_wait filled in, without allocating. One instance per worker. */
export class EventBuffer {
  readonly bytes: Buffer;
  readonly max: number;
  private readonly view: DataView;
  constructor(max: number) {
    this.max = max;
    this.bytes = Buffer.alloc(max * EPOLL_EVENT_SIZE);
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
  }
  events(i: number): number {
    return this.view.getUint32(i * EPOLL_EVENT_SIZE, true);
  }
  slot(i: number): number {
    return this.view.getUint32(i * EPOLL_EVENT_SIZE + EPOLL_DATA_OFFSET, true);
  }
  gen(i: number): number {
    return this.view.getUint32(i * EPOLL_EVENT_SIZE + EPOLL_DATA_OFFSET + 4, true);
  }
}

/** Encodes one epoll_event into `out` (at least EPOLL_EVENT_SIZE bytes). */
export function encodeEvent(out: Uint8Array, events: number, slot: number, gen: number): void {
  const v = new DataView(out.buffer, out.byteOffset, EPOLL_EVENT_SIZE);
  v.setUint32(0, events >>> 0, true);
  v.setUint32(EPOLL_DATA_OFFSET, slot >>> 0, true);
  v.setUint32(EPOLL_DATA_OFFSET + 4, gen >>> 0, true);
}

export function epollCreate(): number {
  const fd = raw.epoll_create1(EPOLL.CLOEXEC) as number;
  return check(fd === -1 ? -errno() : fd, 'epoll_create1');
}

const scratch = Buffer.alloc(16);

/** Registers `fd` for `events`, tagged with (slot, gen): 0 or -errno. */
export function epollAdd(epfd: number, fd: number, events: number, slot: number, gen: number): number {
  encodeEvent(scratch, events, slot, gen);
  return epollCtl(epfd, EPOLL.CTL_ADD, fd, scratch);
}
