// Gets the uploaded images out of a request: either the raw body (image/* or application/octet-stream, buffered by
// the content-type parser under the body limit) or the file parts of a multipart/form-data body, in part order.

import type { FastifyRequest } from 'fastify';
import { Errors } from './errors.js';

export interface Upload {
  images: Buffer[];
  /** Multipart answers with one result per file part; a raw body with a single result. */
  multipart: boolean;
}

/** A multipart part is a file when it has a file name or a content type other than a plain-text field's. */
export function isPartAFile(_field: string | undefined, contentType: string | undefined, fileName: string | undefined): boolean {
  return fileName !== undefined || (contentType !== undefined && !contentType.startsWith('text/plain'));
}

export async function readUpload(req: FastifyRequest, limits: { maxBodyBytes: number; maxFiles: number }): Promise<Upload> {
  if (!req.isMultipart()) {
    const body = req.body;
    if (!Buffer.isBuffer(body) || body.length === 0) throw Errors.EMPTY_BODY();
    return { images: [body], multipart: false };
  }
  const images: Buffer[] = [];
  let total = 0;
  try {
    for await (const part of req.parts()) {
      if (part.type !== 'file') continue; // form fields are ignored
      const bytes = await part.toBuffer();
      total += bytes.length;
      if (total > limits.maxBodyBytes) throw Errors.PAYLOAD_TOO_LARGE(limits.maxBodyBytes);
      if (bytes.length === 0) throw Errors.EMPTY_FILE(images.length);
      images.push(bytes);
    }
  } catch (err) {
    // Our own and @fastify/multipart's errors carry a code; busboy's parse errors do not and mean a broken body.
    if (typeof (err as { code?: unknown }).code === 'string') throw err;
    throw Errors.MALFORMED_MULTIPART();
  }
  if (images.length === 0) throw Errors.NO_FILE();
  return { images, multipart: true };
}
