import HTTPTypes
import Logging
import NIOCore
import NIOHTTPTypes

/// Sits between the HTTP/1 codec and Hummingbird on each connection, and keeps what reaches the
/// routes to what a read-only server answers:
/// - a request other than GET or HEAD is answered 405, and one with a body (a Content-Length or
///   chunked) 413, here, without reading the body; the connection then closes, as what follows on
///   it cannot be trusted to be a request;
/// - a response that cannot be written for `stalledWriteTimeout` (the client does not read, so the
///   socket stays full) closes the connection.
/// A request's head is held until the next part shows whether a body follows (the decoder delivers
/// the end of a bodiless request with its head). The idle timeout (Hummingbird's, further up)
/// covers a client that never finishes a head.
final class RequestGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let stalledWriteTimeout: TimeAmount
    private let logger: Logger
    /// A head waiting to show whether a body follows.
    private var held: HTTPRequest?
    /// Requests passed on whose response has not ended.
    private var unanswered = 0
    /// A refusal decided on: written once the responses before it are; everything read after it is dropped.
    private var refusal: HTTPResponse.Status?
    private var stall: Scheduled<Void>?

    init(stalledWriteTimeout: TimeAmount, logger: Logger) {
        self.stalledWriteTimeout = stalledWriteTimeout
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard refusal == nil else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            if head.method == .get || head.method == .head {
                held = head
            } else {
                refuse(head, .methodNotAllowed, context: context)
            }
        case .body:
            if let head = held { refuse(head, .contentTooLarge, context: context) }
            held = nil
        case .end(let trailers):
            guard let head = held else { return }
            held = nil
            unanswered += 1
            context.fireChannelRead(wrapInboundOut(.head(head)))
            context.fireChannelRead(wrapInboundOut(.end(trailers)))
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        context.write(data, promise: promise)
        if case .end = unwrapOutboundIn(data) {
            unanswered -= 1
            if unanswered == 0, refusal != nil { sendRefusal(context: context) }
        }
    }

    private func refuse(_ request: HTTPRequest, _ status: HTTPResponse.Status, context: ChannelHandlerContext) {
        logger.info("\(request.method.rawValue) \(request.path ?? "") \(status.code)")
        refusal = status
        if unanswered == 0 { sendRefusal(context: context) }
    }

    private func sendRefusal(context: ChannelHandlerContext) {
        guard let status = refusal else { return }
        let body = ByteBuffer(string: "\(status.code) \(status.reasonPhrase)\n")
        var fields: HTTPFields = [.contentType: "text/plain", .contentLength: String(body.readableBytes), .connection: "close"]
        if status == .methodNotAllowed { fields[.allow] = "GET, HEAD" }
        context.write(wrapOutboundOut(.head(HTTPResponse(status: status, headerFields: fields))), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            stall?.cancel()
            stall = nil
        } else if stall == nil {
            stall = context.eventLoop.assumeIsolated().scheduleTask(in: stalledWriteTimeout) { context.close(promise: nil) }
        }
        context.fireChannelWritabilityChanged()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stall?.cancel()
    }
}
