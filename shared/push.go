package shared

import "time"

// Web Push endpoints: the widget subscribes the browser with the server's
// VAPID key and chooses which alerts it wants.
const (
	PathPushKey           = "/api/push/vapid-public-key"
	PathPushSubscriptions = "/api/push/subscriptions"
	PathPushTest          = "/api/push/test"
)

// PushKeyResponse is GET PathPushKey: the applicationServerKey and what
// the server can alert about (a subscription may narrow both).
type PushKeyResponse struct {
	PublicKey  string   `json:"publicKey"`
	Kinds      []string `json:"kinds"`
	Thresholds []int    `json:"thresholds"`
}

// PushKeys are a PushSubscription's keys, base64url.
type PushKeys struct {
	P256dh string `json:"p256dh"`
	Auth   string `json:"auth"`
}

// PushSubscriptionRequest is POST PathPushSubscriptions (DELETE and POST
// PathPushTest need only the endpoint). Empty kinds or thresholds: all the
// server's.
type PushSubscriptionRequest struct {
	Endpoint   string   `json:"endpoint"`
	Keys       PushKeys `json:"keys"`
	Kinds      []string `json:"kinds,omitempty"`
	Thresholds []int    `json:"thresholds,omitempty"`
}

// PushSubscriptionInfo is a subscription as the server lists it (never
// its keys).
type PushSubscriptionInfo struct {
	Endpoint   string    `json:"endpoint"`
	Kinds      []string  `json:"kinds"`
	Thresholds []int     `json:"thresholds"`
	CreatedAt  time.Time `json:"createdAt"`
}

// PushSubscriptionList is GET PathPushSubscriptions.
type PushSubscriptionList struct {
	Subscriptions []PushSubscriptionInfo `json:"subscriptions"`
}

// PushTestResult is POST PathPushTest's 202 body: the test alert's id.
type PushTestResult struct {
	ID string `json:"id"`
}
