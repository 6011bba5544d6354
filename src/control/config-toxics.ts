// Toxics (docs/toxiproxy.md), read from the three places that take them: a frontend's `toxics` in a config
// file (checkToxics: every problem, with its place), and a JSON body of Toxiproxy's shape sent to the
// toxiproxy server's API or to the admin endpoint (readToxic, changeToxic: one ApiError, with the HTTP
// status and the words toxiproxy-server 2.12 answers). The rules they share are here once: the types, each
// type's attributes (whole numbers; `body` and `path` are strings), and HTTP toxics on HTTP frontends only.
//
//   toxics:
//     - { type: latency, attributes: { latency: 100, jitter: 10 } }          # latency_downstream
//     - { name: cut, type: limit_data, stream: upstream, attributes: { bytes: 1000 } }
//
// A body is read as Go's encoding/json reads it into Toxiproxy's structs: keys match whatever their case,
// unknown keys are ignored, null leaves the default (or, in an update, the value before), and a value of the
// wrong JSON type is `bad request body: json: cannot unmarshal ...`. No attribute is range-checked (negative
// numbers too are taken): the engine clamps what it cannot use.

import { HTTP_TOXIC_TYPES, type Mode, STRING_ATTRIBUTES, TOXIC_ATTRIBUTES, TOXIC_TYPES, type ToxicConfig, type ToxicType } from '../route/index.js';
import { CODES, ProxyError } from '../sys/index.js';
import { type Check, child, item, show } from './config-check.js';

export const STREAMS = ['upstream', 'downstream'] as const;

/** A toxic as Toxiproxy's API writes it: every attribute of its type, 0 (or '') where none was given. */
export type ToxicJson = {
  attributes: Record<string, number | string>;
  name: string;
  type: string;
  stream: string;
  toxicity: number;
};

/** What a toxic body may hold (Toxiproxy's shape); keys of any case are read. */
export type ToxicBody = {
  name?: string | null;
  type?: string | null;
  stream?: string | null;
  toxicity?: number | null;
  attributes?: Record<string, number | string | null> | null;
};

/** What an update may change: the attributes given (merged over the others) and the toxicity. */
export type ToxicChange = { toxicity?: number | null; attributes?: Record<string, number | string | null> | null };

/**
 * A request the toxiproxy API (or the admin endpoint's toxic routes) refuses, with the HTTP status
 * toxiproxy-server gives it: 400 a bad body or value, 404 an unknown proxy or toxic, 409 a name in use, 500 a
 * listen that fails. `message` is Toxiproxy's own text where it has one (`toxic already exists`).
 */
export class ApiError extends ProxyError {
  readonly status: number;
  constructor(status: number, message: string) {
    super(CODES.BAD_OPTION, message);
    this.name = 'ApiError';
    this.status = status;
  }
}

// Go's float32, which toxicity is: a larger magnitude does not decode.
const FLOAT32_MAX = 3.4028234663852886e38;
// A name as the admin endpoint and config files take it: one word of visible characters (config-check.ts).
const NAME_RE = /^[^\s\x00-\x1f\x7f]+$/u;

/** The JSON object of a request body, or 400 `bad request body: ...` (an empty body is Go's `EOF`). */
export function decodeJson(text: string): unknown {
  if (text.trim() === '') throw new ApiError(400, 'bad request body: EOF');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ApiError(400, `bad request body: ${(e as Error).message}`);
  }
}

/** The value of `key` in `o` whatever its case, as Go's decoder reads a struct field (the last match wins). */
export function field(o: Record<string, unknown>, key: string): unknown {
  let v: unknown;
  for (const k of Object.keys(o)) if (k.toLowerCase() === key) v = o[k];
  return v === null ? undefined : v;
}

/** 400 for a JSON value of the wrong type, in Go's words: `json: cannot unmarshal string into Go struct field Toxic.toxicity of type float32`. */
export function unmarshal(v: unknown, where: string, goType: string): ApiError {
  const kind = typeof v === 'number' ? `number ${v}` : typeof v === 'boolean' ? 'bool' : Array.isArray(v) ? 'array' : typeof v === 'string' ? 'string' : 'object';
  const into = where.includes('.') ? `Go struct field ${where}` : `Go value`;
  return new ApiError(400, `bad request body: json: cannot unmarshal ${kind} into ${into} of type ${goType}`);
}

/** `v` as a JSON object (null and absent are {}), or 400. */
export function objectOf(v: unknown, goType: string): Record<string, unknown> {
  if (v === undefined || v === null) return {};
  if (typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  throw unmarshal(v, '', goType);
}

/** String field `key` of `o` (absent or null: undefined), or 400 naming Go's `struct`. */
export function stringField(o: Record<string, unknown>, key: string, struct: string): string | undefined {
  const v = field(o, key);
  if (v === undefined || typeof v === 'string') return v;
  throw unmarshal(v, `${struct}.${key}`, 'string');
}

/** What is wrong with `v` as attribute `key`'s value, or null: `body` and `path` are strings, the rest whole numbers. */
export function attributeProblem(key: string, v: unknown): string | null {
  if (STRING_ATTRIBUTES.includes(key)) return typeof v === 'string' ? null : 'must be a string';
  return typeof v === 'number' && Number.isSafeInteger(v) ? null : 'must be a whole number';
}

/**
 * Why a toxic of `type` cannot go on a frontend in `mode`, or null: the HTTP types need mode http, and the
 * byte types mode tcp (an HTTP frontend's bytes do not go through a tunnel; its delays are http_*'s).
 */
export function modeProblem(type: ToxicType, mode: Mode): string | null {
  const http = HTTP_TOXIC_TYPES.includes(type);
  if (http === (mode === 'http')) return null;
  if (http) return `toxic type ${type} acts on HTTP requests: it needs mode http (this is ${mode})`;
  return `toxic type ${type} acts on the bytes of a TCP proxy: in mode http use the http_* types (http_request_delay, http_head_delay, ...)`;
}

/** Every attribute of `type`, 0 or ''. */
export function zeroAttributes(type: ToxicType): Record<string, number | string> {
  const known: readonly string[] = TOXIC_ATTRIBUTES[type];
  return Object.fromEntries(known.map((k) => [k, STRING_ATTRIBUTES.includes(k) ? '' : 0]));
}

/** A toxic as the API writes it; `stream` as the client gave it (Toxiproxy echoes it), else its direction. */
export function toxicJson(t: ToxicConfig, stream?: string): ToxicJson {
  return { attributes: { ...t.attributes }, name: t.name, type: t.type, stream: stream ?? (t.upstream ? 'upstream' : 'downstream'), toxicity: t.toxicity };
}

/** In the order Toxiproxy lists a proxy's toxics: the upstream ones, then the downstream ones, each in the order they were added. */
export function listOrder<T>(toxics: readonly T[], upstream: (t: T) => boolean): T[] {
  return [...toxics.filter(upstream), ...toxics.filter((t) => !upstream(t))];
}

/** How readToxic and changeToxic judge: the frontend's mode, the names in use, and `strict` (the admin endpoint's rules). */
export type ToxicRules = {
  mode: Mode;
  taken: (name: string) => boolean;
  /**
   * The admin endpoint's toxics go back into config documents (a reload after addFrontend), so they follow
   * a config file's rules too: a toxicity from 0 to 1, a name without spaces. Toxiproxy's API takes any.
   */
  strict: boolean;
};

/**
 * A new toxic from a body of Toxiproxy's shape `{name?, type, stream?, toxicity?, attributes?}`, checked in
 * toxiproxy-server's order (stream, the default name `TYPE_STREAM`, type, a name in use, the attributes).
 * Returns it (id -1: the registry gives ids) with `stream` as given. Throws ApiError.
 */
export function readToxic(body: unknown, rules: ToxicRules): { config: ToxicConfig; stream: string } {
  const o = objectOf(body, 'toxics.ToxicWrapper');
  let name = stringField(o, 'name', 'ToxicWrapper');
  const typeText = stringField(o, 'type', 'ToxicWrapper');
  const streamText = stringField(o, 'stream', 'ToxicWrapper');
  const toxicity = toxicityOf(field(o, 'toxicity'), 1, rules.strict);
  const stream = streamText ?? 'downstream';
  const lower = stream.toLowerCase();
  if (lower !== 'upstream' && lower !== 'downstream') throw new ApiError(400, 'stream was invalid, can be either upstream or downstream');
  if (name === undefined || name === '') name = `${typeText ?? ''}_${stream}`;
  if (typeText === undefined || !(TOXIC_TYPES as readonly string[]).includes(typeText)) throw new ApiError(400, 'invalid toxic type');
  const type = typeText as ToxicType;
  const wrongMode = modeProblem(type, rules.mode);
  if (wrongMode !== null) throw new ApiError(400, wrongMode);
  if (rules.strict && !NAME_RE.test(name)) throw new ApiError(400, `a toxic's name must be a string without spaces, not ${show(name)}`);
  if (rules.taken(name)) throw new ApiError(409, 'toxic already exists');
  const attributes = mergeAttributes(type, zeroAttributes(type), field(o, 'attributes'));
  return { config: { id: -1, name, type, upstream: lower === 'upstream', toxicity, attributes }, stream };
}

/** Toxic `t` after an update body: `toxicity` when given, and the attributes given over its own. Throws ApiError (400). */
export function changeToxic(t: ToxicConfig, body: unknown, strict: boolean): ToxicConfig {
  const o = objectOf(body, 'toxics.ToxicWrapper');
  const toxicity = toxicityOf(field(o, 'toxicity'), t.toxicity, strict);
  return { ...t, toxicity, attributes: mergeAttributes(t.type, t.attributes, field(o, 'attributes')) };
}

function toxicityOf(v: unknown, dflt: number, strict: boolean): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !(Math.abs(v) <= FLOAT32_MAX)) throw unmarshal(v, 'ToxicWrapper.toxicity', 'float32');
  if (strict && !(v >= 0 && v <= 1)) throw new ApiError(400, `toxicity must be a number from 0 to 1, not ${v}`);
  return v;
}

/** `base` with the attributes of `v` (a JSON object, or null) over it; keys of other types are ignored, as Go ignores them. */
function mergeAttributes(type: ToxicType, base: Record<string, number | string>, v: unknown): Record<string, number | string> {
  const out = { ...base };
  const given = objectOf(v, `toxics.${type}`);
  for (const key of TOXIC_ATTRIBUTES[type] as readonly string[]) {
    const x = field(given, key);
    if (x === undefined) continue;
    if (attributeProblem(key, x) !== null) throw unmarshal(x, `${type}.${key}`, STRING_ATTRIBUTES.includes(key) ? 'string' : 'int64');
    out[key] = x as number | string;
  }
  return out;
}

/**
 * A config file's toxics at `path`, in order, for a frontend in `mode` (undefined: not known, so HTTP types
 * are not judged here); a problem for each mistake. Stricter than the API: exact keys, a toxicity from 0 to
 * 1, only the type's own attributes. Ids are given later (registry.ts).
 */
export function checkToxics(c: Check, path: string, v: unknown, mode?: Mode): ToxicConfig[] {
  const list = c.list(path, v, 'toxics', false);
  const out: ToxicConfig[] = [];
  const names = new Set<string>();
  list?.forEach((t, i) => {
    const at = item(path, i);
    const o = c.map(at, t, 'a map with type, and stream, toxicity, attributes or name');
    if (!o) return;
    c.keys(at, o, 'toxic');
    const tv = c.required(at, o, 'type');
    const type = tv === undefined ? undefined : c.oneOf(child(at, 'type'), tv, TOXIC_TYPES);
    const wrongMode = type === undefined || mode === undefined ? null : modeProblem(type, mode);
    if (wrongMode !== null) c.problem(child(at, 'type'), wrongMode);
    const stream = o.stream === undefined ? 'downstream' : c.oneOf(child(at, 'stream'), o.stream, STREAMS);
    const toxicity = o.toxicity === undefined ? 1 : toxicityIn(c, child(at, 'toxicity'), o.toxicity);
    const name = o.name === undefined ? (type === undefined ? undefined : `${type}_${stream}`) : c.name(child(at, 'name'), o.name);
    if (name !== undefined && names.has(name)) c.problem(child(at, 'name'), `${show(name)} is already the name of another toxic of this frontend`);
    if (name !== undefined) names.add(name);
    if (type === undefined || name === undefined || stream === undefined || toxicity === undefined || wrongMode !== null) return;
    const attributes = attributesIn(c, child(at, 'attributes'), type, o.attributes);
    out.push({ id: -1, name, type, upstream: stream === 'upstream', toxicity, attributes });
  });
  return out;
}

function toxicityIn(c: Check, path: string, v: unknown): number | undefined {
  if (typeof v === 'number' && v >= 0 && v <= 1) return v;
  c.problem(path, `must be a number from 0 to 1, not ${show(v)}`);
  return undefined;
}

/** Every attribute of `type`, 0 (or '') where none is given; a problem for an unknown one or a value of the wrong kind. */
function attributesIn(c: Check, path: string, type: ToxicType, v: unknown): Record<string, number | string> {
  const known: readonly string[] = TOXIC_ATTRIBUTES[type];
  const out = zeroAttributes(type);
  if (v === undefined || v === null) return out;
  const o = c.map(path, v, `a map of ${known.length > 0 ? known.join(', ') : 'nothing (noop has no attributes)'}`);
  if (!o) return out;
  for (const [k, x] of Object.entries(o)) {
    const problem = known.includes(k) ? attributeProblem(k, x) : null;
    if (!known.includes(k)) c.problem(child(path, k), `${type} has no attribute ${show(k)}${known.length > 0 ? `; it takes ${known.join(', ')}` : ''}`);
    else if (problem !== null) c.problem(child(path, k), `${problem}, not ${show(x)}`);
    else out[k] = x as number | string;
  }
  return out;
}
