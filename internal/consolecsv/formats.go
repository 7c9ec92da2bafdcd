package consolecsv

import (
	"strings"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/cloud/clouds"
)

// The console files come from the clouds' packages (cloud.ConsoleLayout),
// each beside its sources; cloud.ConsoleFormat says how header names are
// matched.

// Format is one console's CSV layout.
type Format = cloud.ConsoleFormat

// formats are the layouts of every cloud that has one.
var formats = clouds.Registry().ConsoleFormats()

// ColumnParams returns the names of the params format's columns feed
// ("productKey", "deviceName", …); nil for an unknown format. A caller may
// give them as Options.Params when the file lacks the column.
func ColumnParams(format string) []string {
	for _, f := range formats {
		if f.Name == format {
			var names []string
			for _, c := range f.Params {
				names = append(names, c.Param)
			}
			return names
		}
	}
	return nil
}

// Formats returns the names of the formats, for usage text.
func Formats() []string {
	names := make([]string, len(formats))
	for i, f := range formats {
		names[i] = f.Name
	}
	return names
}

// fold is the form header names are compared in.
func fold(h string) string {
	h = strings.TrimPrefix(h, "\ufeff")
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(h)) {
		switch {
		case r == ' ' || r == '_' || r == '-' || r == '.' || r == '\u3000':
		case r == '（' || r == '(' || r == ')' || r == '）':
			// "设备名称(DeviceName)" and "设备名称（DeviceName）" fold to the
			// same name as "设备名称devicename".
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
