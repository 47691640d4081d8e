// Image → model input, the one function both the server and the trainer use, so they cannot drift apart.
// Decode (sharp), EXIF auto-orient, drop alpha (flattened on black, like the data sets' backgrounds), convert to
// the model's channels, resize (cover = shortest side then centre crop), then normalise to channel-major floats.

import sharp, { type Metadata, type OutputInfo, type Sharp } from 'sharp';
import { readImageHeader } from './image-header.js';

// Serving decodes untrusted bytes at high rates: sharp's operation cache only costs memory here.
sharp.cache(false);
// Many small images are decoded at once, one per libuv thread: libvips threads within one image would only add
// synchronisation (docs/performance.md).
sharp.concurrency(1);

export interface InputGeometry {
  width: number;
  height: number;
  channels: 1 | 3;
}

export interface Normalization {
  /** Per channel, 0–255 scale. */
  mean: number[];
  std: number[];
}

export interface DecodeOptions {
  /** Refuse images with more pixels than this (width × height of the source) before decoding them. */
  maxPixels?: number;
  /** Let sharp read vector formats (SVG). Off by default: SVG can reference remote or local files. */
  allowVector?: boolean;
  /** Refuse animated or multi-page images declaring more frames than this, from the header. Default: no limit. */
  maxFrames?: number;
}

/** Raw 8-bit pixels, interleaved (HWC): how data set readers hand images to `decodeToChw`. */
export interface RawImage {
  raw: Uint8Array;
  width: number;
  height: number;
  channels: 1 | 2 | 3 | 4;
}

export type ImageInput = Buffer | Uint8Array | RawImage;

/** Why an image was refused; the server maps each kind to a status code. */
export class ImageDecodeError extends Error {
  constructor(
    readonly kind: 'undecodable' | 'too_many_pixels' | 'too_many_frames' | 'unsupported_format',
    message: string,
  ) {
    super(message);
    this.name = 'ImageDecodeError';
  }
}

export const DEFAULT_MAX_PIXELS = 40_000_000;
const VECTOR_FORMATS = new Set(['svg', 'pdf']);

function isRaw(input: ImageInput): input is RawImage {
  return !(input instanceof Uint8Array);
}

/** A PNG or JPEG within the pixel limit, known from its first bytes; throws for one over the limit. */
function isPlainRaster(bytes: Uint8Array, maxPixels: number): boolean {
  const h = readImageHeader(bytes);
  if (!h) return false;
  const pixels = h.width * h.height;
  if (pixels > maxPixels) throw new ImageDecodeError('too_many_pixels', `image has ${pixels} pixels, the limit is ${maxPixels}`);
  return true;
}

/**
 * Decodes and resizes to the model's geometry: uint8, channel-major (C, H, W). The trainer's cache stores exactly
 * this, so an epoch costs no decoding.
 */
export async function decodeToChw(input: ImageInput, geo: InputGeometry, opts: DecodeOptions = {}): Promise<Uint8Array> {
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  let img: Sharp;
  if (isRaw(input)) {
    img = sharp(input.raw, { raw: { width: input.width, height: input.height, channels: input.channels } });
  } else if (isPlainRaster(input, maxPixels)) {
    // A PNG or JPEG whose header was read in JavaScript: no vector, no frames, within the pixel limit.
    img = sharp(input, { failOn: 'warning', limitInputPixels: maxPixels }).autoOrient();
  } else {
    // Read the header only, so oversize images and vector formats are refused before any pixel is decoded.
    let meta: Metadata;
    try {
      meta = await sharp(input, { limitInputPixels: false, failOn: 'none' }).metadata();
    } catch {
      throw new ImageDecodeError('undecodable', 'the body is not a decodable image');
    }
    if (meta.format && VECTOR_FORMATS.has(meta.format) && !opts.allowVector)
      throw new ImageDecodeError('unsupported_format', `${meta.format} images are not accepted`);
    const pixels = (meta.width ?? 0) * (meta.pageHeight ?? meta.height ?? 0);
    if (pixels > maxPixels)
      throw new ImageDecodeError('too_many_pixels', `image has ${pixels} pixels, the limit is ${maxPixels}`);
    // Only the first frame is decoded, but a header declaring thousands of frames is a bomb aimed at decoders that
    // read them all: refuse it here, before anything else reads it.
    if (opts.maxFrames !== undefined && (meta.pages ?? 1) > opts.maxFrames)
      throw new ImageDecodeError('too_many_frames', `image has ${meta.pages} frames, the limit is ${opts.maxFrames}`);
    // failOn 'warning' rejects truncated and corrupt files; animated inputs are read as their first frame.
    img = sharp(input, { failOn: 'warning', limitInputPixels: maxPixels, pages: 1 }).autoOrient();
  }
  img = img.flatten({ background: '#000000' }).resize(geo.width, geo.height, { fit: 'cover', position: 'centre' });
  img = geo.channels === 1 ? img.toColourspace('b-w') : img.toColourspace('srgb');
  let data: Buffer;
  let info: OutputInfo;
  try {
    ({ data, info } = await img.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true }));
  } catch (err) {
    if (/pixel limit/i.test((err as Error).message))
      throw new ImageDecodeError('too_many_pixels', `image exceeds the pixel limit of ${maxPixels}`);
    throw new ImageDecodeError('undecodable', 'the image is truncated or corrupt');
  }
  const c = info.channels;
  const hw = geo.width * geo.height;
  if (info.width !== geo.width || info.height !== geo.height || data.length !== hw * c)
    throw new ImageDecodeError('undecodable', 'the image could not be converted to the model input');
  // HWC → CHW, taking the first `geo.channels` bands (sharp may keep a grey image single-band under 'srgb').
  const out = new Uint8Array(geo.channels * hw);
  for (let ch = 0; ch < geo.channels; ch++) {
    const src = Math.min(ch, c - 1);
    for (let p = 0; p < hw; p++) out[ch * hw + p] = data[p * c + src];
  }
  return out;
}

/** uint8 CHW → normalised float32 CHW, written into `out` at `offset` (a batch buffer) or a new array. */
export function normalizeChw(
  chw: Uint8Array,
  geo: InputGeometry,
  norm: Normalization,
  out: Float32Array = new Float32Array(chw.length),
  offset = 0,
): Float32Array {
  const hw = geo.width * geo.height;
  for (let ch = 0; ch < geo.channels; ch++) {
    const mean = norm.mean[ch];
    const inv = 1 / norm.std[ch];
    const base = ch * hw;
    for (let p = 0; p < hw; p++) out[offset + base + p] = (chw[base + p] - mean) * inv;
  }
  return out;
}

/** Encoded image → the model's input vector (C·H·W float32, normalised). */
export async function preprocessImage(
  input: ImageInput,
  geo: InputGeometry,
  norm: Normalization,
  opts: DecodeOptions = {},
): Promise<Float32Array> {
  return normalizeChw(await decodeToChw(input, geo, opts), geo, norm);
}
