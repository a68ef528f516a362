package ctlsock

import (
	"bufio"
	"context"
	"net"
	"testing"
	"time"
)

func TestServeHandlesEachConnectionAndClosesThemAllOnCancel(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, l, func(ctx context.Context, c net.Conn) {
			line, err := bufio.NewReader(c).ReadString('\n')
			if err == nil {
				c.Write([]byte("echo " + line))
			}
			<-ctx.Done() // a handler that only ends with the daemon
		})
	}()
	var conns []net.Conn
	for i := range 3 {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("hello\n"))
		got, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || got != "echo hello\n" {
			t.Fatalf("connection %d: %q, %v; want its own handler's echo", i, got, err)
		}
		conns = append(conns, c)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after cancel: %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("connection %d still open after Serve returned", i)
		}
	}
	if _, err := net.Dial("tcp", l.Addr().String()); err == nil {
		t.Error("the listener still accepts after Serve returned")
	}
}
