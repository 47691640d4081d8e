// The JavaScript header reader that lets the decoder skip sharp's separate header pass: it must agree with sharp's
// own metadata on real PNG and JPEG files (baseline and progressive, grey and colour, with EXIF), and step aside
// (undefined) for anything else, so sharp still judges those.

import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { readImageHeader } from '../../src/data/image-header.js';
import { DEFAULT_MAX_PIXELS, ImageDecodeError, decodeToChw } from '../../src/data/preprocess.js';

const raw = (w: number, h: number, c: 1 | 3) => sharp(Buffer.alloc(w * h * c, 90), { raw: { width: w, height: h, channels: c } });

describe('readImageHeader', () => {
  it.each([
    ['png grey', () => raw(28, 17, 1).png().toBuffer(), 'png'],
    ['png rgb', () => raw(300, 7, 3).png().toBuffer(), 'png'],
    ['jpeg baseline', () => raw(500, 375, 3).jpeg().toBuffer(), 'jpeg'],
    ['jpeg progressive with EXIF', () => raw(33, 65, 3).withMetadata({ orientation: 6 }).jpeg({ progressive: true }).toBuffer(), 'jpeg'],
    ['jpeg grey', () => raw(64, 48, 1).jpeg().toBuffer(), 'jpeg'],
  ] as const)('%s: the same size as sharp reads', async (_name, make, format) => {
    const bytes = await make();
    const meta = await sharp(bytes).metadata();
    expect(readImageHeader(bytes)).toEqual({ format, width: meta.width, height: meta.height });
  });

  it('EXPECTED FAILURE - other formats and broken headers are left to sharp (undefined)', async () => {
    expect(readImageHeader(await raw(8, 8, 3).webp().toBuffer())).toBeUndefined();
    expect(readImageHeader(await raw(8, 8, 3).gif().toBuffer())).toBeUndefined();
    expect(readImageHeader(Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>'))).toBeUndefined();
    const png = await raw(8, 8, 1).png().toBuffer();
    expect(readImageHeader(png.subarray(0, 20))).toBeUndefined();
    const jpeg = await raw(8, 8, 3).jpeg().toBuffer();
    expect(readImageHeader(jpeg.subarray(0, 40))).toBeUndefined();
    expect(readImageHeader(new Uint8Array(0))).toBeUndefined();
  });

  it('EXPECTED FAILURE - a PNG over the pixel limit is refused from its header, naming its size', async () => {
    const png = await raw(100, 100, 1).png().toBuffer();
    const err = await decodeToChw(png, { width: 8, height: 8, channels: 1 }, { maxPixels: 9999 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageDecodeError);
    expect((err as ImageDecodeError).kind).toBe('too_many_pixels');
    expect((err as Error).message).toBe('image has 10000 pixels, the limit is 9999');
    expect(await decodeToChw(png, { width: 8, height: 8, channels: 1 }, { maxPixels: DEFAULT_MAX_PIXELS })).toHaveLength(64);
  });

  it('EXPECTED FAILURE - a truncated JPEG whose header reads fine is still refused when decoded', async () => {
    const jpeg = await raw(64, 64, 3).jpeg().toBuffer();
    const cut = jpeg.subarray(0, Math.floor(jpeg.length * 0.6));
    expect(readImageHeader(cut)).toEqual({ format: 'jpeg', width: 64, height: 64 });
    await expect(decodeToChw(cut, { width: 8, height: 8, channels: 3 })).rejects.toThrow(/truncated or corrupt/);
  });
});
