// Package cli holds what the commands share at the edge of the process:
// the --version line and a log in the server's format (credsign-agent,
// credsign-emulator), and the settings every client of the API spells the
// same way (--server, --token-file and their variables: credsign's client
// commands and credsign-agent). It imports nothing of the server's.
package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"

	"github.com/rs/zerolog"
)

// Version returns the line --version prints: the program name, the module
// version it was built as ("(devel)" for a build from a checkout), the VCS
// revision when the build recorded one, and the Go version.
func Version(name string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return name + " (unknown version)"
	}
	return versionLine(name, bi)
}

func versionLine(name string, bi *debug.BuildInfo) string {
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	parts := []string{name, v}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev != "" {
		if modified == "true" {
			rev += "+dirty"
		}
		parts = append(parts, "rev "+rev)
	}
	return strings.Join(append(parts, bi.GoVersion), " ")
}

// Logger returns a logger that writes to w one JSON object a line, as the
// credsign server does (zerolog, with its field names: level, time,
// message, and error for an error attribute), from level up. A
// *slog.LevelVar as level can be changed while the logger is in use.
func Logger(w io.Writer, level slog.Leveler) *slog.Logger {
	z := zerolog.New(w).Level(zerolog.TraceLevel).With().Timestamp().Logger()
	return slog.New(leveled{zerolog.NewSlogHandler(z), level})
}

// leveled passes on the records from level up.
type leveled struct {
	slog.Handler
	level slog.Leveler
}

func (h leveled) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level.Level() && h.Handler.Enabled(ctx, l)
}

func (h leveled) WithAttrs(as []slog.Attr) slog.Handler {
	return leveled{h.Handler.WithAttrs(as), h.level}
}

func (h leveled) WithGroup(name string) slog.Handler {
	return leveled{h.Handler.WithGroup(name), h.level}
}

// ParseLevel reads a --log-level: debug, info, warn or error.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	switch s {
	case "debug", "info", "warn", "error":
		return l, l.UnmarshalText([]byte(s))
	}
	return l, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
}
