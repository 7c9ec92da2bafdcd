package consolecsv

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// benchFile is an Alibaba batch file of n rows.
func benchFile(n int) string {
	var b strings.Builder
	b.WriteString("ProductKey,DeviceName,DeviceSecret\r\n")
	for i := range n {
		fmt.Fprintf(&b, "a1B2c3D4e5F,lamp-%06d,%032x\r\n", i, i)
	}
	return b.String()
}

// BenchmarkReader turns rows into device documents; BenchmarkCSVBaseline
// only splits the same file with encoding/csv, the floor of any reader.
func BenchmarkReader(b *testing.B) {
	file := benchFile(10000)
	b.SetBytes(int64(len(file)))
	for b.Loop() {
		rd, err := NewReader(strings.NewReader(file), Options{Params: map[string]any{"regionId": "cn-shanghai"}})
		if err != nil {
			b.Fatal(err)
		}
		for {
			row, err := rd.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil || row.Err != nil {
				b.Fatal(err, row.Err)
			}
		}
	}
}

func BenchmarkCSVBaseline(b *testing.B) {
	file := benchFile(10000)
	b.SetBytes(int64(len(file)))
	for b.Loop() {
		cr := csv.NewReader(strings.NewReader(file))
		for {
			if _, err := cr.Read(); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}
