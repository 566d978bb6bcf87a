package alert

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// browserKeys is a subscription's key pair as a browser makes it.
type browserKeys struct {
	priv *ecdh.PrivateKey
	auth []byte
}

func newBrowserKeys(t *testing.T) browserKeys {
	t.Helper()
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth := make([]byte, 16)
	_, _ = rand.Read(auth)
	return browserKeys{priv: priv, auth: auth}
}

func (k browserKeys) p256dh() string {
	return base64.RawURLEncoding.EncodeToString(k.priv.PublicKey().Bytes())
}
func (k browserKeys) authB64() string { return base64.RawURLEncoding.EncodeToString(k.auth) }

// pushService is a push service on 127.0.0.1 that checks what RFC 8030,
// 8291 and 8292 require of an application server, with its own crypto
// (crypto/ecdh, crypto/hkdf, AES-GCM), independent of webpush-go.
type pushService struct {
	t        *testing.T
	srv      *httptest.Server
	vapidPub string // the key the application server must sign with
	subject  string
	keys     browserKeys
	mu       sync.Mutex
	status   int // answer; 0: 201
	got      []PushPayload
	errs     []string
	requests int
}

func newPushService(t *testing.T, vapidPub, subject string, keys browserKeys) *pushService {
	p := &pushService{t: t, vapidPub: vapidPub, subject: subject, keys: keys}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *pushService) endpoint() string { return p.srv.URL + "/push/abc123" }

func (p *pushService) setStatus(s int) { p.mu.Lock(); p.status = s; p.mu.Unlock() }

func (p *pushService) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests++
	payload, err := p.check(r)
	if err != nil {
		p.errs = append(p.errs, err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	status := p.status
	if status == 0 {
		status = http.StatusCreated
	}
	if status == http.StatusCreated {
		p.got = append(p.got, payload)
	}
	w.WriteHeader(status)
}

func (p *pushService) check(r *http.Request) (PushPayload, error) {
	var out PushPayload
	if r.Method != http.MethodPost {
		return out, fmt.Errorf("method %s", r.Method)
	}
	if got := r.Header.Get("Content-Encoding"); got != "aes128gcm" {
		return out, fmt.Errorf("Content-Encoding %q", got)
	}
	if ttl := r.Header.Get("TTL"); ttl == "" || ttl == "0" {
		return out, fmt.Errorf("TTL %q: an offline device would never get the alert", ttl)
	}
	if err := p.checkVAPID(r.Header.Get("Authorization")); err != nil {
		return out, fmt.Errorf("VAPID: %w", err)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return out, err
	}
	plain, err := decryptAES128GCM(body, p.keys)
	if err != nil {
		return out, fmt.Errorf("aes128gcm: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(plain))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		return out, fmt.Errorf("payload %q: %w", plain, err)
	}
	return out, nil
}

// checkVAPID verifies RFC 8292: "vapid t=<JWT>, k=<key>", k the server's
// key, the JWT ES256-signed by it, aud the endpoint's origin, exp within
// 24 h, sub a mailto: or https: contact.
func (p *pushService) checkVAPID(h string) error {
	rest, ok := strings.CutPrefix(h, "vapid ")
	if !ok {
		return fmt.Errorf("scheme of %q", h)
	}
	params := map[string]string{}
	for _, f := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		params[k] = v
	}
	if params["k"] != p.vapidPub {
		return fmt.Errorf("k=%q, want the server's public key %q", params["k"], p.vapidPub)
	}
	parts := strings.Split(params["t"], ".")
	if len(parts) != 3 {
		return errors.New("t is not a JWT")
	}
	var hdr struct{ Alg, Typ string }
	if err := decodeJWTPart(parts[0], &hdr); err != nil || hdr.Alg != "ES256" {
		return fmt.Errorf("JWT header %+v, %v", hdr, err)
	}
	pub, err := base64.RawURLEncoding.DecodeString(p.vapidPub)
	if err != nil {
		return err
	}
	x, y := elliptic.Unmarshal(elliptic.P256(), pub) //nolint:staticcheck // the test needs the point as ecdsa wants it
	if x == nil {
		return errors.New("the VAPID key is not a P-256 point")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return fmt.Errorf("signature of %d bytes, want r||s of 64", len(sig))
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(&ecdsa.PublicKey{Curve: elliptic.P256(), X: x, Y: y}, digest[:],
		new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return errors.New("the ES256 signature does not verify with the VAPID public key")
	}
	var claims struct {
		Aud string `json:"aud"`
		Exp int64  `json:"exp"`
		Sub string `json:"sub"`
	}
	if err := decodeJWTPart(parts[1], &claims); err != nil {
		return err
	}
	if want := p.srv.URL; claims.Aud != want {
		return fmt.Errorf("aud %q, want the endpoint's origin %q", claims.Aud, want)
	}
	if exp := time.Unix(claims.Exp, 0); !exp.After(time.Now()) || exp.After(time.Now().Add(24*time.Hour)) {
		return fmt.Errorf("exp %v is not within the next 24 h", exp)
	}
	if claims.Sub != p.subject {
		return fmt.Errorf("sub %q, want %q", claims.Sub, p.subject)
	}
	return nil
}

func decodeJWTPart(s string, v any) error {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}

// decryptAES128GCM undoes RFC 8291 with the subscription's private key and
// auth secret: header salt(16) rs(4) idlen(1) keyid(the sender's ephemeral
// key), one record, padding ending in the last-record delimiter 0x02.
func decryptAES128GCM(body []byte, k browserKeys) ([]byte, error) {
	if len(body) < 21 {
		return nil, errors.New("short body")
	}
	salt, rs, idlen := body[:16], binary.BigEndian.Uint32(body[16:20]), int(body[20])
	if len(body) < 21+idlen || idlen != 65 {
		return nil, fmt.Errorf("keyid of %d bytes, want 65", idlen)
	}
	asPubRaw, record := body[21:21+idlen], body[21+idlen:]
	if uint32(len(record)) > rs || rs < 18 {
		return nil, fmt.Errorf("record of %d bytes exceeds rs %d", len(record), rs)
	}
	asPub, err := ecdh.P256().NewPublicKey(asPubRaw)
	if err != nil {
		return nil, err
	}
	secret, err := k.priv.ECDH(asPub)
	if err != nil {
		return nil, err
	}
	info := append(append([]byte("WebPush: info\x00"), k.priv.PublicKey().Bytes()...), asPubRaw...)
	ikm, err := hkdf.Key(sha256.New, secret, k.auth, string(info), 32)
	if err != nil {
		return nil, err
	}
	cek, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: aes128gcm\x00", 16)
	if err != nil {
		return nil, err
	}
	nonce, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: nonce\x00", 12)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	plain, err := gcm.Open(nil, nonce, record, nil)
	if err != nil {
		return nil, err
	}
	plain = bytes.TrimRight(plain, "\x00")
	if len(plain) == 0 || plain[len(plain)-1] != 0x02 {
		return nil, errors.New("no last-record delimiter 0x02")
	}
	return plain[:len(plain)-1], nil
}
