/**
 * The message compressions the server accepts and answers with: gzip, br and deflate (zlib format, what
 * gRPC and HTTP call "deflate"), on every protocol. Connect-node ships gzip and br only, and maps some
 * corrupt inputs (a truncated gzip stream: zlib's Z_BUF_ERROR) to INTERNAL; a body the client compressed
 * badly is the client's error, so every decompression failure here is INVALID_ARGUMENT, except output over
 * the read limit, which is RESOURCE_EXHAUSTED.
 */
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { Code, ConnectError } from '@connectrpc/connect';
import type { Compression } from '@connectrpc/connect/protocol';

type Codec = (bytes: Uint8Array, options: zlib.ZlibOptions & zlib.BrotliOptions) => Promise<Buffer>;

function asArrayBufferBytes(bytes: Buffer): Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer ? (bytes as Uint8Array<ArrayBuffer>) : new Uint8Array(bytes);
}

function compression(name: string, compress: Codec, decompress: Codec): Compression {
  return {
    name,
    async compress(bytes) {
      return asArrayBufferBytes(await compress(bytes, {}));
    },
    async decompress(bytes, readMaxBytes) {
      if (bytes.byteLength === 0) return new Uint8Array(0);
      try {
        return asArrayBufferBytes(await decompress(bytes, { maxOutputLength: readMaxBytes }));
      } catch (error) {
        if ((error as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE') {
          throw new ConnectError(
            `message is larger than the limit of ${readMaxBytes} bytes after decompression`,
            Code.ResourceExhausted,
          );
        }
        throw new ConnectError(
          `${name} decompression failed: the message is not valid ${name} data`,
          Code.InvalidArgument,
        );
      }
    },
  };
}

export const compressionGzip = compression('gzip', promisify(zlib.gzip), promisify(zlib.gunzip));
export const compressionBrotli = compression('br', promisify(zlib.brotliCompress), promisify(zlib.brotliDecompress));
export const compressionDeflate = compression('deflate', promisify(zlib.deflate), promisify(zlib.inflate));

/** In order of preference when a client accepts several. */
export const ACCEPTED_COMPRESSIONS: readonly Compression[] = [compressionGzip, compressionBrotli, compressionDeflate];

/** The value of grpc-accept-encoding / accept-encoding the server advertises. */
export const ACCEPTED_ENCODINGS = ACCEPTED_COMPRESSIONS.map((c) => c.name).join(',');
