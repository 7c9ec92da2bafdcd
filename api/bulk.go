package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"hash/maphash"
	"io"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/rs/zerolog"

	"github.com/credsign/credsign/api/oapi"
	"github.com/credsign/credsign/api/problem"
	"github.com/credsign/credsign/service"
)

// ndjson is the media type of streamed bodies: one JSON document a line.
const ndjson = "application/x-ndjson"

// Limits of an import (POST /v1/imports). A line is one device document,
// capped like a normal request body; the whole stream may be far longer,
// since it is never held in memory: the caps bound one request's hold on
// the server.
const (
	maxImportLine  = DefaultMaxBodyBytes
	maxImportBytes = 1 << 30
	// DefaultImportIdleTimeout is how long an import may go without a
	// device line (blank lines do not count) or without taking its
	// results before the server ends it. It replaces the server's read and
	// write timeouts, which bound a whole request.
	DefaultImportIdleTimeout = 60 * time.Second
	// DefaultImports and DefaultImportsPerToken bound the imports under
	// way at once, in all and of one token.
	DefaultImports         = 8
	DefaultImportsPerToken = 2
	// DefaultImportMaxLines is how many lines one import may have (blank
	// ones included), so that what it remembers of its lines (a 64-bit
	// hash of each device ID, with its line) stays bounded. The summary
	// of a longer one names the first line not read, for the client to
	// send the rest in another import.
	DefaultImportMaxLines = 100_000
	// importBatch and importBatchBytes bound a batch: how many lines are
	// written together, and how many results wait, while the client keeps
	// sending. A batch is written sooner whenever the next line has not
	// arrived whole. The bytes are the lines' as sent, plus
	// importLineCost for each line's result.
	importBatch      = 1000
	importBatchBytes = 1 << 20
	importLineCost   = 256
	// importRetryAfter is the Retry-After of an import refused because
	// too many are under way.
	importRetryAfter = 5
)

// importLimits bounds the imports of a server: their number, in all and
// per token, their idleness and their length.
type importLimits struct {
	idle          time.Duration
	maxLines      int64
	max, perToken int

	mu      sync.Mutex
	n       int
	byToken map[string]int
}

func newImportLimits(cfg Config) *importLimits {
	l := &importLimits{idle: cfg.ImportIdleTimeout, maxLines: cfg.ImportMaxLines, max: cfg.Imports, perToken: cfg.ImportsPerToken, byToken: map[string]int{}}
	if l.idle <= 0 {
		l.idle = DefaultImportIdleTimeout
	}
	if l.maxLines <= 0 {
		l.maxLines = DefaultImportMaxLines
	}
	if l.max <= 0 {
		l.max = DefaultImports
	}
	if l.perToken <= 0 {
		l.perToken = DefaultImportsPerToken
	}
	return l
}

// start counts in an import of the token tokenID, or refuses it with a 429
// when too many are under way. The returned func counts it out.
func (l *importLimits) start(tokenID string) (func(), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var pe *problem.Error
	switch {
	case l.byToken[tokenID] >= l.perToken:
		pe = problem.New(http.StatusTooManyRequests, "this token has "+strconv.Itoa(l.perToken)+" imports under way already; retry after "+strconv.Itoa(importRetryAfter)+"s")
	case l.n >= l.max:
		pe = problem.New(http.StatusTooManyRequests, "the server has "+strconv.Itoa(l.max)+" imports under way already; retry after "+strconv.Itoa(importRetryAfter)+"s")
	}
	if pe != nil {
		pe.RetryAfter = importRetryAfter
		return nil, pe
	}
	l.n++
	l.byToken[tokenID]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.n--
			if l.byToken[tokenID]--; l.byToken[tokenID] == 0 {
				delete(l.byToken, tokenID)
			}
		})
	}, nil
}

// streamBody is the gate's check of a streamed (NDJSON) body: the media
// type, no content coding, and the total size cap. The handler reads and
// checks the lines one at a time.
func (s *Server) streamBody(w http.ResponseWriter, r *http.Request) error {
	if r.Body == nil || r.Body == http.NoBody {
		return nil // an empty import: a summary of no lines
	}
	if err := notEncoded(r); err != nil {
		return err
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != ndjson {
		return problem.New(http.StatusUnsupportedMediaType, "the request body must be "+ndjson)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return problem.New(http.StatusUnsupportedMediaType, "the request body must be UTF-8")
	}
	if r.ContentLength > maxImportBytes {
		return &http.MaxBytesError{Limit: maxImportBytes}
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxImportBytes)
	return nil
}

// ImportDevices implements oapi.StrictServerInterface. The work happens
// while the answer is written (importStream), one line at a time.
func (h handlers) ImportDevices(ctx context.Context, req oapi.ImportDevicesRequestObject) (oapi.ImportDevicesResponseObject, error) {
	op := operationOf(ctx)
	if op == nil || op.lineSchema == nil {
		return nil, errors.New("the gate let through an import without the schema of its lines")
	}
	schema := op.lineSchema
	body := req.Body
	if body == nil {
		body = http.NoBody
	}
	release, err := h.s.imports.start(caller(ctx).TokenID)
	if err != nil {
		return nil, err
	}
	mode := service.ImportCreate
	if req.Params.Mode != nil {
		switch *req.Params.Mode {
		case oapi.ImportDevicesParamsModeUpsert:
			mode = service.ImportUpsert
		case oapi.ImportDevicesParamsModeResume:
			mode = service.ImportResume
		}
	}
	return &importStream{
		s:       h.s,
		ctx:     ctx,
		body:    body,
		schema:  schema,
		mode:    mode,
		mint:    req.Params.Tokens != nil && *req.Params.Tokens,
		seen:    map[uint64]int64{},
		seed:    maphash.MakeSeed(),
		release: release,
	}, nil
}

// importStream is one import: it reads the request's lines and writes a
// result for each as it goes.
type importStream struct {
	s      *Server
	ctx    context.Context
	body   io.Reader
	schema *openapi3.Schema
	mode   service.ImportMode
	mint   bool
	// seen maps a hash (seeded afresh for each import) of each device ID
	// this import wrote (or is writing) to its line, to refuse a second
	// line with the same ID: 16 bytes and the map's overhead a device, at
	// most DefaultImportMaxLines of them. The writer alone uses it.
	seen map[uint64]int64
	seed maphash.Seed
	// release counts the import out of the server's limits.
	release func()
	summary oapi.ImportSummary
}

// importResult is one line of the answer (ImportLine in openapi.yaml).
type importResult struct {
	Line     int64               `json:"line,omitempty"`
	ID       string              `json:"id,omitempty"`
	Status   int                 `json:"status,omitempty"`
	Existing bool                `json:"existing,omitempty"`
	Problem  *problem.Document   `json:"problem,omitempty"`
	TokenID  string              `json:"tokenId,omitempty"`
	Token    string              `json:"token,omitempty"`
	Summary  *oapi.ImportSummary `json:"summary,omitempty"`
}

// VisitImportDevicesResponse implements oapi.ImportDevicesResponseObject.
// It always answers 200 and a stream: what goes wrong after that is said
// in the stream (a line's problem, or a problem beside the summary).
//
// When the client goes away (the body ends in a broken connection, or the
// answer cannot be written) no further batch is written: what was written
// and not answered is what a re-run with mode=resume finds (docs/import.md).
func (st *importStream) VisitImportDevicesResponse(w http.ResponseWriter) error {
	defer st.release()
	log := zerolog.Ctx(st.ctx)
	lim := st.s.imports
	rc := http.NewResponseController(w)
	// Answer while the body is still arriving. net/http would otherwise
	// discard the unread body at the first write. HTTP/2 is full duplex
	// already and says ErrNotSupported.
	if err := rc.EnableFullDuplex(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		log.Warn().Err(err).Msg("import: full duplex")
	}
	// The read deadline is the idle timeout: a device line moves it on, a
	// blank line does not, and time spent waiting for the writer (the
	// store) pushes it back by as much.
	deadline := time.Now().Add(lim.idle)
	setDeadline := deadline
	_ = rc.SetReadDeadline(deadline)
	_ = rc.SetWriteDeadline(deadline)
	moveDeadline := func(d time.Time) {
		deadline = d
		if deadline.Sub(setDeadline) > lim.idle/16 {
			setDeadline = deadline
			_ = rc.SetReadDeadline(deadline)
		}
	}
	w.Header().Set("Content-Type", ndjson)
	w.Header().Set("Cache-Control", noStore)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)

	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	in := bufio.NewReaderSize(st.body, maxImportLine+2) // the line, "\r\n"
	// Two stages, so that reading and checking the next lines overlaps
	// writing the previous ones to the store: this goroutine reads and
	// checks lines into batches (importBatch lines or importBatchBytes at
	// most, fewer as soon as reading the next line would wait for the
	// client); the
	// writer stores each batch and answers its lines in order. One batch
	// waits between them.
	//
	// The writer's context outlives the request's: a batch is written
	// whole or not at all. net/http cancels the request's context on any
	// error reading the body, the idle deadline's included, so whether the
	// client is gone is told apart here (gone), and from the request's
	// context only once the body was read to its end (readAll).
	var gone, readAll atomic.Bool
	wctx := context.WithoutCancel(st.ctx)
	batches := make(chan *importBatchWork, 1)
	stopped := make(chan struct{}) // closed when the writer stops early
	written := make(chan struct{}) // closed when the writer is done
	go func() {
		defer close(written)
		for b := range batches {
			if !gone.Load() && !(readAll.Load() && st.ctx.Err() != nil) {
				st.write(wctx, b)
				_ = rc.SetWriteDeadline(time.Now().Add(lim.idle))
				if st.answer(enc, b, rc) {
					continue
				}
			}
			gone.Store(true)
			close(stopped)
			for range batches { // let the reader finish
			}
			return
		}
	}()
	send := func(b *importBatchWork) bool {
		select {
		case batches <- b:
			return true
		case <-stopped:
			return false
		}
	}
	var stop *problem.Document
	var lines int64
	cur := &importBatchWork{}
	for line := int64(1); ; line++ {
		raw, tooLong, err := readLine(in)
		if err != nil && !errors.Is(err, io.EOF) {
			var mbe *http.MaxBytesError
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
				stop = document(problem.New(http.StatusRequestTimeout, "no device line for "+lim.idle.String()+": the import ends after line "+strconv.FormatInt(line-1, 10)))
			case errors.As(err, &mbe):
				stop = readProblem(err)
			default:
				gone.Store(true) // the connection broke
				stop = readProblem(err)
				log.Debug().Int64("line", line).Msg("import: the connection broke; no further batch is written")
			}
			break
		}
		if len(raw) == 0 && !tooLong && errors.Is(err, io.EOF) {
			readAll.Store(true)
			break
		}
		if line > lim.maxLines {
			stop = document(problem.New(http.StatusRequestEntityTooLarge, "an import is at most "+strconv.FormatInt(lim.maxLines, 10)+
				" lines: the rest, from line "+strconv.FormatInt(line, 10)+", was not read; send it in another import"))
			break
		}
		lines = line
		r, item := st.check(line, raw, tooLong)
		cur.results = append(cur.results, r)
		cur.bytes += len(raw) + importLineCost
		if item != nil {
			cur.items, cur.slots = append(cur.items, *item), append(cur.slots, len(cur.results)-1)
		}
		if r.Status != 0 || item != nil { // not a blank line
			moveDeadline(time.Now().Add(lim.idle))
		}
		if errors.Is(err, io.EOF) {
			readAll.Store(true)
			break
		}
		if len(cur.results) >= importBatch || cur.bytes >= importBatchBytes || !lineBuffered(in) {
			start := time.Now()
			if !send(cur) {
				break
			}
			moveDeadline(deadline.Add(time.Since(start)))
			cur = &importBatchWork{}
		}
	}
	if len(cur.results) > 0 {
		send(cur)
	}
	close(batches)
	<-written
	if gone.Load() {
		log.Info().Int64("lines", lines).Int64("answered", st.summary.Created+st.summary.Updated+st.summary.Failed).
			Msg("import: the client went away; no further batch was written")
		return nil
	}
	sum := st.summary
	sum.Lines = lines
	_ = rc.SetWriteDeadline(time.Now().Add(lim.idle))
	if err := enc.Encode(importResult{Summary: &sum, Problem: stop}); err == nil {
		_ = rc.Flush()
	}
	log.Info().Int64("lines", sum.Lines).Int64("created", sum.Created).Int64("updated", sum.Updated).
		Int64("failed", sum.Failed).Int64("tokens", sum.Tokens).Bool("complete", stop == nil).Msg("import done")
	return nil
}

// importBatchWork is one batch of lines between the reader and the writer:
// every line's result (Status 0 for a blank line), and the devices to
// write with the result each completes (items[k] completes
// results[slots[k]]).
type importBatchWork struct {
	bytes   int // the lines' and results' share of importBatchBytes
	results []importResult
	items   []service.ImportItem
	slots   []int
}

// answer writes the results of b in order, counts them in the summary, and
// flushes; false when the client stopped reading.
func (st *importStream) answer(enc *json.Encoder, b *importBatchWork, rc *http.ResponseController) bool {
	for _, r := range b.results {
		switch {
		case r.Status == 0:
			continue // a blank line
		case r.Status == http.StatusCreated:
			st.summary.Created++
		case r.Existing:
			st.summary.Existing++
		case r.Status < 300:
			st.summary.Updated++
		default:
			st.summary.Failed++
		}
		if r.Token != "" {
			st.summary.Tokens++
		}
		if err := enc.Encode(r); err != nil {
			zerolog.Ctx(st.ctx).Info().Err(err).Int64("line", r.Line).Msg("import: the client stopped reading")
			return false
		}
	}
	return rc.Flush() == nil
}

// lineBuffered reports whether in holds a whole line already read, so that
// reading it will not wait for the client. (A part of a line does not
// count: the batch before it is answered while the rest is on its way.)
// It looks as far as the next end of line: over a whole import, one more
// pass over the body.
func lineBuffered(in *bufio.Reader) bool {
	b, _ := in.Peek(in.Buffered())
	return bytes.IndexByte(b, '\n') >= 0
}

// readProblem describes a body that could not be read to its end.
func readProblem(err error) *problem.Document {
	pe, _ := problem.Classify(err) // a *http.MaxBytesError is a 413
	if pe.Status == http.StatusInternalServerError {
		pe = problem.New(http.StatusBadRequest, "the request body could not be read to its end")
	}
	return document(pe)
}

// readLine reads one line without its end of line. A line longer than
// maxImportLine is skipped to its end and reported as tooLong. err is
// io.EOF with the last line when the body ends without a newline.
func readLine(in *bufio.Reader) (line []byte, tooLong bool, err error) {
	line, err = in.ReadSlice('\n')
	for errors.Is(err, bufio.ErrBufferFull) {
		tooLong = true
		_, err = in.ReadSlice('\n')
	}
	if tooLong {
		return nil, true, err
	}
	line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	if len(line) > maxImportLine {
		return nil, true, err
	}
	return line, false, err
}

// check reads one input line: its result when it is refused (or blank:
// Status 0), else a result to be completed and the device to write.
func (st *importStream) check(n int64, raw []byte, tooLong bool) (importResult, *service.ImportItem) {
	r := importResult{Line: n}
	fail := func(err error) (importResult, *service.ImportItem) {
		st.fail(&r, err)
		return r, nil
	}
	if tooLong {
		return fail(problem.New(http.StatusRequestEntityTooLarge,
			"the line is longer than "+strconv.Itoa(maxImportLine)+" bytes"))
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return r, nil
	}
	// One pass reads the line and checks the limits of every request
	// body: depth, width, members named twice, lone surrogates.
	sc := scanJSON(raw)
	if sc.badUTF8 || sc.syntax && !utf8.Valid(raw) {
		return fail(problem.New(http.StatusBadRequest, "the line is not valid UTF-8",
			problem.FieldError{Field: "body", Reason: "not valid UTF-8"}))
	}
	if sc.syntax {
		return fail(problem.New(http.StatusBadRequest, "the line is not valid JSON",
			problem.FieldError{Field: "body", Reason: "not valid JSON"}))
	}
	if err := sc.problem(); err != nil {
		return fail(err)
	}
	generic := sc.value
	if obj, ok := generic.(map[string]any); ok {
		if id, ok := obj["id"].(string); ok && len(id) <= 128 {
			r.ID = id
		}
	}
	if err := st.schema.VisitJSON(generic, openapi3.VisitAsRequest(), openapi3.MultiErrors()); err != nil {
		fields := requestErrorFields(&openapi3filter.RequestError{Err: err})
		return fail(problem.New(http.StatusUnprocessableEntity, service.DetailInvalid, fields...))
	}
	var d struct {
		ID     string            `json:"id"`
		Cloud  string            `json:"cloud"`
		Params map[string]any    `json:"params"`
		Secret *string           `json:"secret"`
		Labels map[string]string `json:"labels"`
		Group  string            `json:"group"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return fail(problem.New(http.StatusBadRequest, "the line could not be decoded"))
	}
	return r, &service.ImportItem{ID: d.ID, Doc: service.Document{Cloud: d.Cloud, Params: d.Params, Secret: d.Secret, Labels: d.Labels, Group: d.Group}}
}

// write writes the devices of b and completes their results. A device ID
// this import wrote already (or is writing) is refused; one that failed
// unwritten may come again on a later line.
func (st *importStream) write(ctx context.Context, b *importBatchWork) {
	items, slots, keys := b.items[:0], b.slots[:0], make([]uint64, 0, len(b.items))
	for k, it := range b.items {
		r := &b.results[b.slots[k]]
		key := maphash.String(st.seed, it.ID)
		if first, dup := st.seen[key]; dup {
			st.fail(r, problem.New(http.StatusConflict, "the id is on line "+strconv.FormatInt(first, 10)+" of this import already"))
			continue
		}
		st.seen[key] = r.Line
		items, slots, keys = append(items, it), append(slots, b.slots[k]), append(keys, key)
	}
	if len(items) == 0 {
		return
	}
	for k, got := range st.s.svc.ImportDevices(ctx, caller(ctx), items, st.mode, st.mint) {
		r := &b.results[slots[k]]
		if got.Err != nil {
			if got.Device.ID == "" {
				delete(st.seen, keys[k]) // not written: a later line may write it
			}
			st.fail(r, got.Err)
			continue
		}
		r.Status, r.Existing = http.StatusOK, got.Existing
		if got.Created {
			r.Status = http.StatusCreated
		}
		if got.Token != nil {
			r.TokenID, r.Token = got.Token.Record.ID, got.Token.Text
		}
	}
}

// fail completes r with the problem of err.
func (st *importStream) fail(r *importResult, err error) {
	pe, ok := problem.Classify(err)
	if !ok {
		zerolog.Ctx(st.ctx).Error().Err(err).Int64("line", r.Line).Str("deviceId", r.ID).Msg("import: line failed")
	}
	r.Status, r.Problem = pe.Status, document(pe)
}

// document is the problem document of pe, as a line of the answer holds it.
func document(pe *problem.Error) *problem.Document {
	return &problem.Document{
		Type:   "about:blank",
		Title:  http.StatusText(pe.Status),
		Status: pe.Status,
		Detail: pe.Detail,
		Errors: pe.Fields,
	}
}
