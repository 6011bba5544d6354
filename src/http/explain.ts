// The words of the HTTP proxy's log lines. A failure is told by its termination code (core/term.ts, what is
// counted) and a WHY detail (which of the code's causes it was, for the words); explain() builds the words
// from them and from the slot's state only when the log is about to print a line, so that a flood of
// failures the rate limit holds back costs no string.

import { errnoName } from '../sys/index.js';
import { lastConnectCall, lastConnectErrno, lastConnectServer, where } from '../route/index.js';
import type { H1Context } from './state.js';

export const WHY = {
  NONE: 0,
  HEAD_LATE: 1, // a request head not complete within the header timeout
  BODY_IDLE: 2, // nothing of a request body for the idle timeout
  BODY_NOT_TAKEN: 3, // the backend took none of the request body for the idle timeout
  NO_ANSWER: 4, // the backend did not start its response within the backend timeout
  NOT_READING: 5, // the client read none of the response for the backend timeout
  STALLED: 6, // the backend sent nothing for the backend timeout mid-response
  CONNECT_LATE: 7, // the backend's connect did not finish within the backend timeout
  HEAD_OVER_BUFFER: 8,
  HEAD_OVER_LIMIT: 9,
  TOO_MANY_FIELDS: 10,
  HEAD_REWRITE: 11, // the rewritten request head did not fit its buffer
  BAD_REQUEST: 12, // llhttp refused the request head (its parser says why)
  BAD_BODY: 13, // llhttp refused the request body
  BAD_VERSION: 14,
  NO_HOST: 15,
  MANY_HOSTS: 16,
  CONNECT_METHOD: 17,
  CODING: 18, // a transfer coding other than chunked
  LENGTH_OVER: 19, // Content-Length over the body limit
  BODY_OVER: 20, // body bytes over the body limit
  WRITE_BACKEND: 21, // errno
  CONNECT: 22, // the connect path failed (route's last call and errno)
  NO_SLOT: 23, // no table slot for a backend connection
  RESP_OVER_BUFFER: 24,
  BACKEND_CLOSED: 25, // the backend closed before the response ended
  READ_BACKEND: 26, // errno
  BAD_RESPONSE: 27, // llhttp refused the response head
  BAD_RESPONSE_BODY: 28, // llhttp refused the response body
  RESP_FIELDS: 29,
  UNASKED_101: 30,
  RESP_REWRITE: 31, // the rewritten response head did not fit its buffer
  RESP_HEAD_LARGE: 32, // the response head is over the head size limit
  READ_CLIENT: 33, // errno
  WRITE_CLIENT: 34, // errno
  EARLY_BYTES: 35, // more bytes after a 101's heads than a buffer holds
  NO_SERVER: 36, // the backend has no server up
  BAD_HOST: 37, // the Host value is not uri-host [":" port]
  BAD_TARGET: 38, // the request-target is not valid (target.ts)
  TARGET_FORM: 39, // the request-target's form does not fit the method
  HOST_MISMATCH: 40, // an absolute-form target's authority and Host disagree
} as const;

/**
 * The words for `why` on client c's exchange (`err`: the errno where `why` carries one). Reads the parsers,
 * so it runs before the backend's slot is closed.
 */
export function explain(ctx: H1Context, c: number, why: number, err: number): string {
  const t = ctx.t;
  const f = ctx.frontends[t.fe[c]];
  const b = t.peer[c];
  const srv = b >= 0 ? (ctx.servers[t.srv[b]] ?? null) : why === WHY.CONNECT || why === WHY.CONNECT_LATE ? lastConnectServer : null;
  const be = where(ctx.backends[ctx.h1.backend[c]], srv);
  const rp = b >= 0 ? ctx.h1.parsers[b] : null;
  const p = ctx.h1.parsers[c];
  switch (why) {
    case WHY.HEAD_LATE: return `request head not complete within ${f.headerTimeoutMs} ms`;
    case WHY.BODY_IDLE: return `request body: nothing for ${f.idleTimeoutMs} ms`;
    case WHY.BODY_NOT_TAKEN: return `${be} took none of the request body for ${f.idleTimeoutMs} ms`;
    case WHY.NO_ANSWER: return `${be} did not answer within ${f.backendTimeoutMs} ms`;
    case WHY.NOT_READING: return `client read none of the response for ${f.backendTimeoutMs} ms`;
    case WHY.STALLED: return `${be} sent nothing for ${f.backendTimeoutMs} ms in the middle of a response`;
    case WHY.CONNECT_LATE: return `${be}: connect did not finish within ${f.backendTimeoutMs} ms`;
    case WHY.HEAD_OVER_BUFFER: return 'request head over the buffer size';
    case WHY.HEAD_OVER_LIMIT: return `request head over ${f.maxHeaderSize} bytes`;
    case WHY.TOO_MANY_FIELDS: return 'too many header fields';
    case WHY.HEAD_REWRITE: return 'request head too large to forward';
    case WHY.BAD_REQUEST: return `malformed request: ${p?.errorName()} ${p?.errorReason()}`;
    case WHY.BAD_BODY: return `malformed request body: ${p?.errorName()} ${p?.errorReason()}`;
    case WHY.BAD_VERSION: return `unsupported version HTTP/${p?.httpMajor}.${p?.httpMinor}`;
    case WHY.NO_HOST: return 'HTTP/1.1 request without Host';
    case WHY.MANY_HOSTS: return 'more than one Host';
    case WHY.CONNECT_METHOD: return 'CONNECT is not supported';
    case WHY.CODING: return 'transfer coding other than chunked';
    case WHY.LENGTH_OVER: return `Content-Length ${p?.contentLength} over ${f.maxBodySize}`;
    case WHY.BODY_OVER: return `request body over ${f.maxBodySize} bytes`;
    case WHY.WRITE_BACKEND: return `write to backend: ${errnoName(err)}`;
    case WHY.CONNECT: return `${be}: ${lastConnectCall}: ${errnoName(lastConnectErrno)}`;
    case WHY.NO_SLOT: return 'connection table full: no slot left for a backend connection';
    case WHY.RESP_OVER_BUFFER: return `${be}: response head over the buffer size`;
    case WHY.BACKEND_CLOSED: return `${be}: backend closed before the response ended`;
    case WHY.READ_BACKEND: return `${be}: read from backend: ${errnoName(err)}`;
    case WHY.BAD_RESPONSE: return `${be}: invalid response: ${rp?.errorName()} ${rp?.errorReason()}`;
    case WHY.BAD_RESPONSE_BODY: return `${be}: invalid response body: ${rp?.errorName()} ${rp?.errorReason()}`;
    case WHY.RESP_FIELDS: return `${be}: too many header fields in the response`;
    case WHY.UNASKED_101: return `${be}: 101 to a request that did not ask to upgrade`;
    case WHY.RESP_REWRITE: return `${be}: response head too large to relay`;
    case WHY.RESP_HEAD_LARGE: return `${be}: response head too large`;
    case WHY.READ_CLIENT: return `read from client: ${errnoName(err)}`;
    case WHY.WRITE_CLIENT: return `write to client: ${errnoName(err)}`;
    case WHY.EARLY_BYTES: return 'upgrade: more early tunnel bytes than a buffer holds';
    case WHY.NO_SERVER: return `${be}: no server up`;
    case WHY.BAD_HOST: return 'invalid Host (not host[:port])';
    case WHY.BAD_TARGET: return 'invalid request-target';
    case WHY.TARGET_FORM: return 'request-target form not allowed with this method (* is for OPTIONS, host:port for CONNECT)';
    case WHY.HOST_MISMATCH: return 'Host names another host or port than the absolute-form target';
    default: return `why ${why}`;
  }
}
