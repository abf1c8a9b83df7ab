package simulator

import "time"

const windowSize = 60 * time.Second

// window is the sliding 60 s window of admitted calls behind RPM and TPM.
// It is not safe for concurrent use; the Server's mutex guards it.
type window struct {
	rpm, tpm int
	calls    []windowCall // admitted calls, oldest first
	tokens   int          // sum of calls[i].tokens
}

type windowCall struct {
	at     time.Time
	tokens int
}

// verdict is a window's answer to one call.
type verdict int

const (
	admitted verdict = iota
	overRPM
	overTPM
	tooLarge // cost alone is above TPM: waiting never helps
)

// admit charges a call of cost tokens arriving at now, or says why not and
// how long until enough of the window has expired for it to pass.
func (w *window) admit(now time.Time, cost int) (verdict, time.Duration) {
	w.expire(now)
	if w.tpm > 0 && cost > w.tpm {
		return tooLarge, 0
	}
	var v verdict
	var wait time.Duration
	if w.rpm > 0 && len(w.calls) >= w.rpm {
		// The call passes once all but rpm-1 calls have expired.
		v, wait = overRPM, w.calls[len(w.calls)-w.rpm].at.Add(windowSize).Sub(now)
	}
	if w.tpm > 0 && w.tokens+cost > w.tpm {
		used := w.tokens
		for _, c := range w.calls {
			used -= c.tokens
			if used+cost <= w.tpm {
				if d := c.at.Add(windowSize).Sub(now); d > wait {
					v, wait = overTPM, d
				}
				break
			}
		}
	}
	if wait > 0 {
		return v, wait
	}
	if w.rpm > 0 || w.tpm > 0 {
		w.calls = append(w.calls, windowCall{at: now, tokens: cost})
		w.tokens += cost
	}
	return admitted, 0
}

func (w *window) expire(now time.Time) {
	i := 0
	for i < len(w.calls) && !w.calls[i].at.Add(windowSize).After(now) {
		w.tokens -= w.calls[i].tokens
		i++
	}
	if i > 0 {
		w.calls = append(w.calls[:0], w.calls[i:]...)
	}
}

func (w *window) reset() {
	w.calls, w.tokens = nil, 0
}
