// Command hostilebench sends oversized documents to a running credsign
// (one import of N refused lines, or N concurrent PUTs) and reports the
// server's peak RSS (VmHWM) and CPU time from /proc/PID, so that the cost
// of refusing hostile bodies can be compared with a normal write on the
// same machine in the same run. scripts/hostile-bench.sh starts the server
// and runs it; docs/api.md ("Limits") gives the figures.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

var shape = flag.String("shape", "params", "params: objects of 256 members as param values; zzz: arrays under an unknown member")

func doc(id string, members int) []byte {
	if *shape == "params" {
		return paramsDoc(id, members)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"id":%q,"cloud":"aliyun","params":{"productKey":"a1B2c3D4e5F","deviceName":%q},"secret":"0123456789abcdef0123456789abcdef","labels":{`, id, id)
	n := 0
	for i := 0; i < 256 && n < members; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"k%d":"v"`, i)
		n++
	}
	b.WriteString(`},"zzz":[`)
	first := true
	for n < members {
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.WriteByte('[')
		for j := 0; j < 256 && n < members; j++ {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`"xxxxxxx"`)
			n++
		}
		b.WriteByte(']')
	}
	b.WriteString("]}")
	return b.Bytes()
}

func rss(pid string) (hwm, cur string) {
	b, _ := os.ReadFile("/proc/" + pid + "/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			hwm = strings.TrimSpace(l[6:])
		}
		if strings.HasPrefix(l, "VmRSS:") {
			cur = strings.TrimSpace(l[6:])
		}
	}
	return
}

func cpu(pid string) time.Duration {
	b, _ := os.ReadFile("/proc/" + pid + "/stat")
	s := string(b)
	f := strings.Fields(s[strings.LastIndex(s, ")")+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * 10 * time.Millisecond
}

func main() {
	url := flag.String("url", "http://127.0.0.1:8080", "credsign base URL")
	pid := flag.String("pid", "", "server pid")
	what := flag.String("what", "import", "import | put | putok")
	n := flag.Int("n", 2000, "lines or requests")
	members := flag.Int("members", 6200, "members a document")
	flag.Parse()
	tok := os.Getenv("CREDSIGN_TOKEN")
	if *pid == "" || tok == "" {
		fmt.Fprintln(os.Stderr, "hostilebench: -pid and $CREDSIGN_TOKEN are required")
		os.Exit(2)
	}
	h0, r0 := rss(*pid)
	c0 := cpu(*pid)
	start := time.Now()
	switch *what {
	case "import":
		pr, pw := io.Pipe()
		go func() {
			bw := bufio.NewWriter(pw)
			for i := 0; i < *n; i++ {
				bw.Write(doc(fmt.Sprintf("atk-%d", i), *members))
				bw.WriteByte('\n')
			}
			bw.Flush()
			pw.Close()
		}()
		res, err := send("POST", *url+"/v1/imports", tok, "application/x-ndjson", pr)
		if err != nil {
			fmt.Println("error", err)
			return
		}
		codes := map[string]int{}
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(nil, 64<<20)
		var last string
		for sc.Scan() {
			l := sc.Text()
			if i := strings.Index(l, `"status":`); i >= 0 {
				codes[l[i+9:i+12]]++
			}
			last = l
		}
		if len(last) > 300 {
			last = last[:300]
		}
		fmt.Println("statuses", codes, "last", last)
	case "put", "putok":
		var wg sync.WaitGroup
		var mu sync.Mutex
		codes := map[int]int{}
		for i := 0; i < *n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var body []byte
				id := fmt.Sprintf("put-%d", i)
				if *what == "put" {
					body = doc(id, *members)
					// a PUT body has no id
					body = bytes.Replace(body, []byte(`"id":"`+id+`",`), nil, 1)
				} else {
					body = []byte(`{"cloud":"aliyun","params":{"productKey":"a1B2c3D4e5F","deviceName":"` + id + `"},"secret":"0123456789abcdef0123456789abcdef"}`)
				}
				res, err := send("PUT", *url+"/v1/devices/"+id, tok, "application/json", bytes.NewReader(body))
				if err != nil {
					fmt.Println("error", err)
					return
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				mu.Lock()
				codes[res.StatusCode]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		fmt.Println("statuses", codes)
	}
	h1, r1 := rss(*pid)
	c1 := cpu(*pid)
	fmt.Printf("%s n=%d members=%d line=%dB: %v wall; server peak RSS (VmHWM) %s -> %s, RSS now %s -> %s; server CPU %v (%.2f ms each)\n",
		*what, *n, *members, len(doc("atk-0", *members)), time.Since(start).Round(time.Millisecond), h0, h1, r0, r1, c1-c0, float64(c1-c0)/float64(time.Millisecond)/float64(*n))
}

// send makes one request to credsign with tok as its bearer token.
func send(method, url, tok, contentType string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", contentType)
	return http.DefaultClient.Do(req)
}

func paramsDoc(id string, members int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"id":%q,"cloud":"aliyun","secret":"0123456789abcdef0123456789abcdef","params":{"productKey":"a1B2c3D4e5F","deviceName":%q`, id, id)
	n := 0
	for p := 0; n < members; p++ {
		fmt.Fprintf(&b, `,"p%d":{`, p)
		for j := 0; j < 256 && n < members; j++ {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `"k%d":1`, j)
			n++
		}
		b.WriteByte('}')
	}
	b.WriteString("}}")
	return b.Bytes()
}
