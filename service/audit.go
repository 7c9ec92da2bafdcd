package service

import (
	"context"
	"io"

	"github.com/rs/zerolog"

	"github.com/credsign/credsign/internal/metrics"
)

// Audit events are the one record of who did what to which secret: every
// token minted, revoked or rotated, every enrolment, key rotation, device
// or group change, issue and admin token reload. Every one goes through
// audit below, which writes it to the service's audit sink
// (Config.Audit) when it has one, else to the logger in ctx with the
// diagnostic log (the development default).
//
// The sink receives one JSON object, ending in a newline, per Write, and
// nothing else. A Write that fails is counted
// (credsign_audit_write_failures_total) and the event is written, whole,
// to the diagnostic log (Config.Log) at error level instead: an event is
// never dropped silently. The request that caused it does not fail: what
// the event records has been done in the store by then (a token minted, a
// device enrolled), and answering an error would have the caller retry
// and do it twice; the failures metric and its alert say at once that the
// sink needs attention.

// auditKey is the context key of the audit logger (WithAudit).
type auditKey struct{}

// auditCtx is the audit logger of a call and its request ID.
type auditCtx struct {
	l         *zerolog.Logger
	requestID string
}

// auditWriter is the service's audit sink with its failure handling.
type auditWriter struct {
	sink    io.Writer
	metrics *metrics.Metrics
	diag    zerolog.Logger
}

// Write writes one event to the sink; on failure it counts it and writes
// the event to the diagnostic log instead. It never returns an error, so
// that zerolog does not print its own line to stderr.
func (w *auditWriter) Write(event []byte) (int, error) {
	if _, err := w.sink.Write(event); err != nil {
		w.metrics.AuditWriteFailed()
		ev := w.diag.Error().Err(err)
		if n := len(event); n > 0 && event[n-1] == '\n' {
			ev = ev.RawJSON("auditEvent", event[:n-1])
		}
		ev.Msg("audit sink write failed; the event is here instead")
	}
	return len(event), nil
}

// WithAudit returns ctx carrying the service's audit logger, with the
// request ID on every event; the API calls it for every request. Without
// an audit sink it returns ctx as it is, and events go to the logger in
// ctx.
func (s *Service) WithAudit(ctx context.Context, requestID string) context.Context {
	if s.audit == nil {
		return ctx
	}
	return context.WithValue(ctx, auditKey{}, &auditCtx{l: s.audit, requestID: requestID})
}

// audit starts an audit event: who (token ID and role) did what. It goes
// to the audit logger in ctx (WithAudit), else to the logger in ctx.
func audit(ctx context.Context, caller Principal, event string) *zerolog.Event {
	// Log, not Info: an audit line is written whatever the logger's level
	// (credsign serve --log-level warn must not drop the audit trail); the
	// level field is added by hand, so it follows the context's fields.
	var ev *zerolog.Event
	if ac, ok := ctx.Value(auditKey{}).(*auditCtx); ok {
		ev = ac.l.Log().Str(zerolog.LevelFieldName, zerolog.LevelFieldMarshalFunc(zerolog.InfoLevel))
		if ac.requestID != "" {
			ev = ev.Str("requestId", ac.requestID)
		}
	} else {
		ev = zerolog.Ctx(ctx).Log().Str(zerolog.LevelFieldName, zerolog.LevelFieldMarshalFunc(zerolog.InfoLevel))
	}
	return ev.Bool("audit", true).Str("event", event).
		Str("tokenId", caller.TokenID).Str("role", caller.Role)
}
