package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/credsign/credsign/api/oapi"
)

// backupIdleTimeout is how long a backup's client may take to accept the
// next bytes; the server's write timeout is extended by it as they go.
const backupIdleTimeout = 60 * time.Second

// GetBackup implements oapi.StrictServerInterface. The copy is written
// while the answer is (backupStream).
func (h handlers) GetBackup(ctx context.Context, _ oapi.GetBackupRequestObject) (oapi.GetBackupResponseObject, error) {
	return &backupStream{s: h.s, ctx: ctx}, nil
}

// backupStream writes the store's snapshot as the answer.
type backupStream struct {
	s   *Server
	ctx context.Context
}

// VisitGetBackupResponse implements oapi.GetBackupResponseObject. An error
// before the first byte is answered as a problem; one after it cuts the
// connection (http.ErrAbortHandler), so that the client sees a short body
// for what it is rather than a complete-looking file.
func (b *backupStream) VisitGetBackupResponse(w http.ResponseWriter) error {
	rc := http.NewResponseController(w)
	started := false
	size := func(n int64) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		w.Header().Set("Cache-Control", noStore)
		w.Header().Set("Content-Disposition", `attachment; filename="credsign-backup.db"`)
		w.WriteHeader(http.StatusOK)
		started = true
	}
	out := &deadlineWriter{w: w, rc: rc}
	n, err := b.s.svc.Backup(b.ctx, caller(b.ctx), out, size)
	if err == nil {
		return nil
	}
	if !started {
		return err
	}
	zerolog.Ctx(b.ctx).Error().Err(err).Int64("bytes", n).Msg("backup: cut short")
	panic(http.ErrAbortHandler)
}

// deadlineWriter extends the connection's write deadline as bytes go out,
// at most once a second, so that a large copy is bounded by the client's
// pace rather than by the server's write timeout.
type deadlineWriter struct {
	w    http.ResponseWriter
	rc   *http.ResponseController
	last time.Time
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	if now := time.Now(); now.Sub(d.last) >= time.Second {
		d.last = now
		_ = d.rc.SetWriteDeadline(now.Add(backupIdleTimeout))
	}
	return d.w.Write(p)
}
