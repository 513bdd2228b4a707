// The legacy HTTP+SSE front end (2024-11-05): GET /sse opens the session's one stream, POST /messages
// feeds it. Only framing differs from Streamable HTTP: sessions, children and routing are shared.

internal import SwitchyardCore
internal import SwitchyardIO

extension Gateway {
    /// `GET /sse`: a new session whose stream starts with the `endpoint` event (L-02). The response also
    /// carries `Mcp-Session-Id`, so a load balancer can pin the session's POSTs (`?sessionId=`) to us.
    func legacyStream(_ ex: HTTPExchange, _ pool: ServerPool) {
        guard ex.method == .get else {
            // 405 lets 2025-11-25 clients pointed at /sse fall back to GET on the same URL (C-03a).
            respondError(
                ex, 405, "Method Not Allowed", JSONRPCErrorCode.serverError, "Method Not Allowed: use GET for the SSE stream",
                extra: [("Allow", "GET")])
            return
        }
        guard AcceptSet(header: ex.header("Accept")).sse else {
            respondError(ex, 406, "Not Acceptable", JSONRPCErrorCode.serverError, "Not Acceptable: GET needs Accept: text/event-stream")
            return
        }
        guard admitSession(ex), !keyStreamLimitReached(ex) else { return }
        let session = Session(id: SecureRandom.hex(bytes: 16), serverName: pool.spec.name, transport: .legacy, nowMs: loop.nowMillis)
        sessions[session.id] = session
        session.keyLabel = requestKey?.label
        let stream = openStream(ex, session: session, isGet: true, sessionHeader: true)
        session.getStream = stream
        log.info("session_opened", [("session", session.id), ("server", pool.spec.name), ("transport", "sse"), ("peer", ex.peer)])
        let endpoint = Route.messagesPath(server: ex.path.hasPrefix("/servers/") ? pool.spec.name : nil, sessionID: session.id)
        writeRaw(stream, Array("event: endpoint\ndata: \(endpoint)\n\n".utf8))
    }

    /// `POST /messages?sessionId=…`: 202 at once; the answer goes on the session's stream (L-04).
    func legacyPost(_ ex: HTTPExchange, _ pool: ServerPool) {
        guard ex.method == .post else {
            respondError(
                ex, 405, "Method Not Allowed", JSONRPCErrorCode.serverError, "Method Not Allowed: POST messages here",
                extra: [("Allow", "POST")])
            return
        }
        guard MediaType.isJSON(contentType: ex.header("Content-Type")) else {
            respondError(
                ex, 415, "Unsupported Media Type", JSONRPCErrorCode.serverError,
                "Unsupported Media Type: Content-Type must be application/json")
            return
        }
        guard let session = lookupSession(ex, Route.legacySessionID(query: ex.query), pool, .legacy) else { return }
        ex.withBody { body in legacyBody(ex, session, pool, body) }
    }

    func legacyBody(_ ex: HTTPExchange, _ session: Session, _ pool: ServerPool, _ body: UnsafeRawBufferPointer) {
        let env: Envelope
        do {
            env = try EnvelopeScanner.scan(body)
        } catch {
            respondError(ex, 400, "Bad Request", error.code, error.message)
            return
        }
        // The POST is answered now; everything else travels on the stream.
        ex.respond(status: 202, reason: "Accepted", headers: [], body: nil)
        guard let stream = session.getStream else { return }
        let reply = Reply(exchange: ex, mode: .sse, isBatch: false, expected: env.kind == .request ? 1 : 0, sessionID: session.id)
        reply.stream = stream
        reply.endsStream = false
        let isInitialize = env.kind == .request && env.method.map { EnvelopeScanner.equals(body, $0, "\"initialize\"") } == true
        if isInitialize {
            guard !session.initializeStarted else {
                return replyError(reply, body, env, JSONRPCErrorCode.invalidRequest, "Invalid Request: session already initialized")
            }
            session.initializeStarted = true
            session.requestedVersion = requestedVersion(body, env)
            let message = Array(body)
            attach(session, pool) { [weak self] result in
                guard let self else { return }
                message.withUnsafeBytes { b in self.initializeOnChild(session, result, b, reply) }
            }
            return
        }
        guard session.initializeStarted else {
            // A reconnected client that skips initialize learns why instead of hearing nothing (L-C2).
            if env.kind == .request {
                replyError(reply, body, env, JSONRPCErrorCode.serverError, "session not initialized: send initialize first")
            }
            return
        }
        forward(session, body, env, reply)
    }
}
