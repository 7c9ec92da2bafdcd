package cloud

import (
	"fmt"
	"strings"
	"unicode"
)

// ConsoleFormat is the layout of the file a cloud's console exports its
// devices in, for `credsign import` (internal/consolecsv reads it; the
// sources of each layout are beside it in its cloud's package).
//
// Header names are matched after folding case and dropping spaces, '_',
// '-' and '.', so "DeviceName", "device_name" and "Device Name" are one
// name; the Chinese names are the consoles' Chinese labels for the same
// fields. Columns are found by header name, never by position, and
// columns not listed (Nickname/备注名称, IotId, 状态, …) are ignored.
// A UTF-8 BOM and CRLF line ends are fine; a file whose header is not
// UTF-8 but GB18030 (Excel's "CSV" on a Chinese Windows) is decoded.
type ConsoleFormat struct {
	// Name is the --format value, e.g. "aliyun-csv".
	Name string
	// Cloud is the credsign cloud the devices belong to; the Registry
	// fills it in with the cloud that gives the layout.
	Cloud string
	// Secret is the column holding the device secret.
	Secret ConsoleColumn
	// Params are the columns that become params, by param name.
	Params []ConsoleColumn
	// Required lists the params every device must end up with (from a
	// column or from the importer's params); the Registry fills it in with
	// the cloud's required params.
	Required []string
	// DefaultID is the id template used when the importer gives none.
	DefaultID string
	// Signature lists the header names that identify the format.
	Signature []string
	// SecretOK validates the secret; the message must not repeat it.
	SecretOK func(secret string) string
	// Derive, when set, fills params derivable from others (huawei deviceId).
	Derive func(params map[string]string)
	// Only lists the columns that make the id but are not params of the
	// cloud (huawei nodeId, productId).
	Only []string
}

// ConsoleColumn is one column of a console file: the param (or "secret")
// it feeds and the header names it is known by, already folded.
type ConsoleColumn struct {
	Param string
	Names []string
	// Check, when set, validates a param's value from the file; the
	// message must not repeat the value (a misplaced column may hold a
	// secret).
	Check func(value string) string
}

// ConsoleWord returns a column check that accepts min to max bytes of
// ASCII letters, digits and the characters of extra, and otherwise says
// the value is not a what. An id of letters and digits only (extra
// empty) is told as such, its length bound being a guard only.
func ConsoleWord(what string, min, max int, extra string) func(string) string {
	rule := "letters and digits"
	if extra != "" {
		quoted := make([]string, 0, len(extra))
		for _, r := range extra {
			quoted = append(quoted, "'"+string(r)+"'")
		}
		rule = fmt.Sprintf("%d to %d letters, digits, %s", min, max, strings.Join(quoted, ", "))
	}
	return func(v string) string {
		if n := len(v); n < min || n > max || strings.IndexFunc(v, NotIn(extra)) >= 0 {
			return "is not a " + what + " (" + rule + ")"
		}
		return ""
	}
}

// NotIn reports a rune that is neither an ASCII letter or digit nor in extra.
func NotIn(extra string) func(rune) bool {
	return func(r rune) bool {
		return !(r < 128 && (unicode.IsLetter(r) || unicode.IsDigit(r))) && !strings.ContainsRune(extra, r)
	}
}
