package ctlsock

import (
	"context"
	"errors"
	"net"
	"sync"
)

// Serve accepts connections on l and runs handle for each in its own
// goroutine until ctx is done; then it closes l and every open connection,
// waits for the handlers and returns nil. A connection is closed after its
// handler returns. An Accept error other than l being closed ends Serve
// with that error (wrap l in Listener to pause and retry instead).
func Serve(ctx context.Context, l net.Listener, handle func(ctx context.Context, c net.Conn)) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
		done  bool
	)
	stop := context.AfterFunc(ctx, func() {
		l.Close()
		mu.Lock()
		done = true
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	defer stop()
	defer wg.Wait()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		mu.Lock()
		if done {
			mu.Unlock()
			c.Close()
			return nil
		}
		conns[c] = true
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			handle(ctx, c)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
			c.Close()
		}()
	}
}
