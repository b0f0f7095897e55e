package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/ucprelay/ucprelay/internal/config"
	"github.com/ucprelay/ucprelay/internal/reload"
	"github.com/ucprelay/ucprelay/pkg/webhook"
)

// signingReloader is run's watcher of the configuration file and the signing key files:
// on a change of their content (every reload.interval) or on SIGHUP it loads the
// configuration again, exactly as at start, reads every partner's signing keys, and
// switches each partner to the key its signing.key_id names. All or nothing: one
// unreadable key, or an invalid configuration, keeps every partner on its current key.
// Only the signing keys change while run runs; other changes take effect at the next
// restart, and the log says so.
func (a *app) signingReloader(s *settings, log *slog.Logger, demand <-chan struct{}) *reload.Watcher {
	switches := map[string]*webhook.SwitchSigner{}
	for id, p := range s.partners {
		if sw, ok := p.Endpoint.Signer.(*webhook.SwitchSigner); ok {
			switches[id] = sw
		}
	}
	current := s.Config
	return &reload.Watcher{
		Files:    func() []string { return reloadFiles(s.configFile, current) },
		Interval: s.Reload.Interval,
		Demand:   demand,
		Log:      log,
		Apply: func(context.Context) error {
			next, err := s.reloadConfig()
			if err != nil {
				return err
			}
			signers := map[string]webhook.Signer{}
			var errs []error
			for id := range switches {
				key := "partners." + id + ".signing"
				p, ok := next.Partners[id]
				if !ok {
					continue // a removed partner: a restart change, reported below
				}
				sg, _, err := partnerSigner(key, p.Signing, s.partners[id].Version)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				if sg != nil {
					signers[id] = sg
				}
			}
			if err := errors.Join(errs...); err != nil {
				return err
			}
			for id, sg := range signers {
				was, now := current.Partners[id].Signing, next.Partners[id].Signing
				switches[id].Set(sg)
				log.Info("signing keys reloaded", "partner", id, "key_id", now.KeyID, "previous_key_id", was.KeyID, "keys", len(now.KeySet()))
			}
			if restart := restartChanges(current, next); restart != "" {
				log.Warn("the configuration changed beyond the partners' signing keys; those changes take effect at the next restart", "changed", restart)
			}
			current = next
			return nil
		},
	}
}

// reloadFiles are the files whose change reloads the signing keys: the configuration
// file and every key file it names.
func reloadFiles(file string, c *config.Config) []string {
	var out []string
	if file != "" {
		out = append(out, file)
	}
	for _, id := range c.PartnerIDs() {
		for _, k := range c.Partners[id].Signing.KeySet() {
			out = append(out, k.KeyFile)
		}
	}
	return out
}

// restartChanges names what differs between two configurations besides the partners'
// signing sections and the reload settings, "" when nothing does.
func restartChanges(was, now *config.Config) string {
	strip := func(c *config.Config) []byte {
		cp := *c
		cp.Partners = map[string]config.Partner{}
		for id, p := range c.Partners {
			p.Signing = config.Signing{}
			cp.Partners[id] = p
		}
		cp.Reload = config.Reload{}
		b, err := config.Describe(&cp)
		if err != nil {
			return []byte(err.Error())
		}
		return b
	}
	a, b := lines(strip(was)), lines(strip(now))
	var diff []string
	for l := range b {
		if !a[l] {
			diff = append(diff, "+"+l)
		}
	}
	for l := range a {
		if !b[l] {
			diff = append(diff, "-"+l)
		}
	}
	if len(diff) == 0 {
		return ""
	}
	slices.Sort(diff)
	return strings.Join(diff, "; ")
}

// lines are the lines of a rendered configuration, trimmed (keys of a changed value's
// parents appear unchanged, so the diff names the changed line itself).
func lines(b []byte) map[string]bool {
	out := map[string]bool{}
	for _, l := range bytes.Split(b, []byte("\n")) {
		if t := strings.TrimSpace(string(l)); t != "" {
			out[t] = true
		}
	}
	return out
}

// reloadDemands are the SIGHUPs run receives, or the test's channel; stop ends them.
func (a *app) reloadDemands() (demand <-chan struct{}, stop func()) {
	if a.reloadDemand != nil {
		return a.reloadDemand, func() {}
	}
	sig := make(chan os.Signal, 1)
	out := make(chan struct{})
	done := make(chan struct{})
	signal.Notify(sig, syscall.SIGHUP)
	go func() {
		for {
			select {
			case <-sig:
				select {
				case out <- struct{}{}:
				case <-done:
					return
				}
			case <-done:
				return
			}
		}
	}()
	return out, func() { signal.Stop(sig); close(done) }
}
