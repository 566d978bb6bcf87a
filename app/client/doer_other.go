//go:build !(js && wasm)

package client

import "net/http"

func defaultDoer() Doer { return &http.Client{} }
