package api

import "testing"

// devicePage is a page of GET /v1/devices as the tests read it.
type devicePage struct {
	Devices []struct{ ID string }
	Next    *string
}

// devicePages lists GET /v1/devices?query as token, following each page's
// next, and returns the device IDs of every page in order; it fails t on
// a status other than 200 and when there are more than maxPages pages.
func (e *env) devicePages(t *testing.T, query, token string, maxPages int) [][]string {
	t.Helper()
	var pages [][]string
	after := ""
	for {
		r := e.do("GET", "/v1/devices?"+query+after, token, nil)
		mustStatus(t, r, 200, "list")
		var page devicePage
		r.json(t, &page)
		ids := []string{}
		for _, d := range page.Devices {
			ids = append(ids, d.ID)
		}
		if pages = append(pages, ids); page.Next == nil {
			return pages
		}
		if len(pages) >= maxPages {
			t.Fatal("pagination does not end")
		}
		after = "&after=" + *page.Next
	}
}
