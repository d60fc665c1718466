import { type DescFile, toBinary } from '@bufbuild/protobuf';
import { nestedTypes } from '@bufbuild/protobuf/reflect';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from '@connectrpc/connect';
import { ServerReflection as ServerReflectionV1 } from '../../gen/grpc/reflection/v1/reflection_pb.js';
import { ServerReflection as ServerReflectionV1alpha } from '../../gen/grpc/reflection/v1alpha/reflection_pb.js';

// A reflection client needs a handful of questions per session; a stream asking more is a loop or abuse.
const MAX_REQUESTS_PER_STREAM = 1_000;

/**
 * The request oneof as v1 and v1alpha both generate it; written once here so the
 * answering logic serves both versions without knowing which one it is talking to.
 */
type ReflectionQuestion =
  | { case: 'fileByFilename'; value: string }
  | { case: 'fileContainingSymbol'; value: string }
  | { case: 'fileContainingExtension'; value: { containingType: string; extensionNumber: number } }
  | { case: 'allExtensionNumbersOfType'; value: string }
  | { case: 'listServices'; value: string }
  | { case: undefined; value?: undefined };

interface ReflectionRequest {
  host: string;
  messageRequest: ReflectionQuestion;
}

/** The response oneof, as plain init objects that either version's schema accepts. */
type ReflectionAnswer =
  | { case: 'fileDescriptorResponse'; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: 'allExtensionNumbersResponse'; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: 'listServicesResponse'; value: { service: { name: string }[] } }
  | { case: 'errorResponse'; value: { errorCode: number; errorMessage: string } };

function errorAnswer(code: Code, message: string): ReflectionAnswer {
  // Connect's Code numbers are the gRPC status codes, which is what error_code carries.
  return { case: 'errorResponse', value: { errorCode: code, errorMessage: message } };
}

/**
 * Everything reflection can be asked about, built once per registration so a request costs a map lookup
 * plus collecting one file's dependency closure.
 */
class DescriptorIndex {
  readonly serviceNames: readonly string[];
  readonly #fileByName = new Map<string, DescFile>();
  readonly #fileBySymbol = new Map<string, DescFile>();
  readonly #messageTypeNames = new Set<string>();
  readonly #extensionFileByExtendee = new Map<string, Map<number, DescFile>>();
  readonly #serializedByName = new Map<string, Uint8Array>();

  constructor(servedFiles: readonly DescFile[]) {
    // Only the caller's own files are "served"; their imports are indexed for lookups but list no services.
    this.serviceNames = [...new Set(servedFiles.flatMap((file) => file.services.map((service) => service.typeName)))];
    // Each file is visited once, so the walk is bounded by the number of distinct files reachable.
    const unvisited = [...servedFiles];
    for (let file = unvisited.pop(); file !== undefined; file = unvisited.pop()) {
      const fileName = file.proto.name;
      if (this.#fileByName.has(fileName)) continue;
      this.#fileByName.set(fileName, file);
      this.#serializedByName.set(fileName, toBinary(FileDescriptorProtoSchema, file.proto));
      this.#indexSymbols(file);
      unvisited.push(...file.dependencies);
    }
  }

  answer(question: ReflectionQuestion): ReflectionAnswer {
    switch (question.case) {
      case 'listServices':
        return { case: 'listServicesResponse', value: { service: this.serviceNames.map((name) => ({ name })) } };
      case 'fileByFilename':
        return this.#fileAnswer(this.#fileByName.get(question.value), `file ${question.value}`);
      case 'fileContainingSymbol':
        return this.#fileAnswer(this.#fileBySymbol.get(question.value), `symbol ${question.value}`);
      case 'fileContainingExtension': {
        const { containingType, extensionNumber } = question.value;
        const file = this.#extensionFileByExtendee.get(containingType)?.get(extensionNumber);
        return this.#fileAnswer(file, `extension ${extensionNumber} of ${containingType}`);
      }
      case 'allExtensionNumbersOfType': {
        if (!this.#messageTypeNames.has(question.value))
          return errorAnswer(Code.NotFound, `unknown message type ${question.value}`);
        const numbers = [...(this.#extensionFileByExtendee.get(question.value)?.keys() ?? [])].sort((a, b) => a - b);
        return {
          case: 'allExtensionNumbersResponse',
          value: { baseTypeName: question.value, extensionNumber: numbers },
        };
      }
      case undefined:
        return errorAnswer(Code.InvalidArgument, 'request names no question');
    }
  }

  #fileAnswer(file: DescFile | undefined, what: string): ReflectionAnswer {
    if (file === undefined) return errorAnswer(Code.NotFound, `unknown ${what}`);
    return { case: 'fileDescriptorResponse', value: { fileDescriptorProto: this.#withDependencies(file) } };
  }

  /** The file first, then its transitive imports, so a client can build it without asking again. */
  #withDependencies(file: DescFile): Uint8Array[] {
    const included = new Set<string>();
    const serialized: Uint8Array[] = [];
    const pending = [file];
    for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
      const fileName = next.proto.name;
      if (included.has(fileName)) continue;
      included.add(fileName);
      const bytes = this.#serializedByName.get(fileName);
      if (bytes !== undefined) serialized.push(bytes);
      pending.push(...next.dependencies);
    }
    return serialized;
  }

  #indexSymbols(file: DescFile): void {
    const define = (symbol: string): void => {
      // The first file to declare a name wins, mirroring how a protobuf registry rejects the second.
      if (!this.#fileBySymbol.has(symbol)) this.#fileBySymbol.set(symbol, file);
    };
    for (const type of nestedTypes(file)) {
      define(type.typeName);
      switch (type.kind) {
        case 'service':
          for (const method of type.methods) define(`${type.typeName}.${method.name}`);
          break;
        case 'message':
          this.#messageTypeNames.add(type.typeName);
          for (const field of type.fields) define(`${type.typeName}.${field.name}`);
          for (const oneof of type.oneofs) define(`${type.typeName}.${oneof.name}`);
          break;
        case 'enum': {
          // Enum values are scoped like siblings of their enum, not children of it (C++ scoping rules).
          const scope = type.parent?.typeName ?? file.proto.package;
          for (const value of type.values) define(scope === '' ? value.name : `${scope}.${value.name}`);
          break;
        }
        case 'extension': {
          const byNumber = this.#extensionFileByExtendee.get(type.extendee.typeName) ?? new Map<number, DescFile>();
          if (!byNumber.has(type.number)) byNumber.set(type.number, file);
          this.#extensionFileByExtendee.set(type.extendee.typeName, byNumber);
          break;
        }
      }
    }
  }
}

/** One reflection stream, identical for v1 and v1alpha: each request gets exactly one response, in order. */
async function* answerReflectionStream<Request extends ReflectionRequest>(
  index: DescriptorIndex,
  requests: AsyncIterable<Request>,
  context: HandlerContext,
): AsyncGenerator<{ validHost: string; originalRequest: Request; messageResponse: ReflectionAnswer }> {
  let answered = 0;
  for await (const request of requests) {
    if (context.signal.aborted) return;
    if (answered >= MAX_REQUESTS_PER_STREAM) {
      throw new ConnectError(`more than ${MAX_REQUESTS_PER_STREAM} requests on one stream`, Code.ResourceExhausted);
    }
    answered++;
    yield { validHost: request.host, originalRequest: request, messageResponse: index.answer(request.messageRequest) };
  }
}

/**
 * Serves grpc.reflection.v1 and v1alpha ServerReflection for `files` (typically the generated `file_…`
 * descriptors of every service the router serves, plus the health and reflection files themselves).
 * Their imports are found through `DescFile.dependencies`, so they need not be listed.
 */
export function registerReflectionServices(router: ConnectRouter, files: readonly DescFile[]): void {
  const index = new DescriptorIndex(files);
  router.service(ServerReflectionV1, {
    serverReflectionInfo: (requests, context) => answerReflectionStream(index, requests, context),
  });
  router.service(ServerReflectionV1alpha, {
    serverReflectionInfo: (requests, context) => answerReflectionStream(index, requests, context),
  });
}
