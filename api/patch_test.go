package api

// mergePatch is a request body sent as application/merge-patch+json by
// env.do.
type mergePatch string
