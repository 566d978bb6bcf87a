package pgstore

import (
	"time"

	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/server/store/storetest"
)

type SaveResultT = store.SaveResult

func saveReq(account string, at time.Time, pct float64, key string) store.SaveRequest {
	h := ""
	if key != "" {
		h = "h-" + key
	}
	return store.SaveRequest{Snapshot: storetest.Snap(account, at, pct), IdempotencyKey: key, BodyHash: h}
}
