package webhook

import (
	"net/http"
	"sync/atomic"
)

// SwitchSigner is a Signer whose key can be replaced while requests are being signed:
// each request (a retry too) is signed by the signer current when it is sent, so a
// rotated key takes effect at the next request without a restart. Create it with
// NewSwitchSigner.
type SwitchSigner struct {
	cur atomic.Pointer[signerRef]
}

type signerRef struct{ s Signer }

// NewSwitchSigner returns a SwitchSigner signing with s.
func NewSwitchSigner(s Signer) *SwitchSigner {
	w := &SwitchSigner{}
	w.Set(s)
	return w
}

// Set makes s sign the requests from now on.
func (w *SwitchSigner) Set(s Signer) { w.cur.Store(&signerRef{s}) }

// Current is the signer that signs now.
func (w *SwitchSigner) Current() Signer { return w.cur.Load().s }

// Sign implements [Signer].
func (w *SwitchSigner) Sign(r *http.Request, body []byte) error {
	return w.Current().Sign(r, body)
}
