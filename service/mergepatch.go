package service

// MergePatch applies a JSON Merge Patch (RFC 7396) to target and returns
// the result. Both are JSON values as encoding/json decodes them into an
// any (map[string]any objects, nil for null); neither is modified, though
// the result may share values with them that the patch left as they were.
// It is the algorithm of RFC 7396 section 2: a patch that is not an object
// replaces the target; an object patch removes the target's members it
// names with null and merges the others, member by member, into the target
// (made an empty object when it is not one).
func MergePatch(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, _ := target.(map[string]any)
	out := make(map[string]any, len(t)+len(p))
	for k, v := range t {
		out[k] = v
	}
	for k, v := range p {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = MergePatch(out[k], v)
	}
	return out
}
