// Width and height of a PNG or JPEG read from its first bytes in JavaScript, so the decoder can check the pixel
// limit without a separate header pass through sharp (a whole libvips call per upload). Anything else, or a header
// this reader does not understand, returns undefined and the caller asks sharp.

export interface ImageHeader {
  format: 'png' | 'jpeg';
  width: number;
  height: number;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function png(b: Uint8Array): ImageHeader | undefined {
  // Signature, then the IHDR chunk first: length (4), "IHDR" (4), width (4), height (4), big-endian.
  if (b.length < 24) return undefined;
  for (let i = 0; i < 8; i++) if (b[i] !== PNG_SIGNATURE[i]) return undefined;
  if (b[12] !== 0x49 || b[13] !== 0x48 || b[14] !== 0x44 || b[15] !== 0x52) return undefined;
  const u32 = (o: number) => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
  const width = u32(16);
  const height = u32(20);
  return width > 0 && height > 0 ? { format: 'png', width, height } : undefined;
}

// Start-of-frame markers (baseline, progressive, lossless, arithmetic): every 0xC0–0xCF except DHT (C4), JPG (C8)
// and DAC (CC).
const isSof = (m: number) => m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc;

function jpeg(b: Uint8Array): ImageHeader | undefined {
  if (b.length < 4 || b[0] !== 0xff || b[1] !== 0xd8) return undefined;
  let o = 2;
  while (o + 4 <= b.length) {
    if (b[o] !== 0xff) return undefined;
    const marker = b[o + 1];
    if (marker === 0xff) {
      o++; // fill byte
      continue;
    }
    // Markers without a length: TEM, RSTn; SOS or EOI before a frame header: not a JPEG we understand.
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      o += 2;
      continue;
    }
    if (marker === 0xd9 || marker === 0xda) return undefined;
    const len = (b[o + 2] << 8) | b[o + 3];
    if (len < 2) return undefined;
    if (isSof(marker)) {
      // length (2), precision (1), height (2), width (2)
      if (o + 9 > b.length) return undefined;
      const height = (b[o + 5] << 8) | b[o + 6];
      const width = (b[o + 7] << 8) | b[o + 8];
      // Height 0 means "defined later by DNL": leave such files to sharp.
      return width > 0 && height > 0 ? { format: 'jpeg', width, height } : undefined;
    }
    o += 2 + len;
  }
  return undefined;
}

/** PNG or JPEG dimensions from the header bytes; undefined for other formats or headers not understood. */
export function readImageHeader(bytes: Uint8Array): ImageHeader | undefined {
  return png(bytes) ?? jpeg(bytes);
}
