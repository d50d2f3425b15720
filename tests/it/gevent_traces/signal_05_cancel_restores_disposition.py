# SIGUSR2 was ignored before a handler was registered; after cancel, is it
# ignored again?
import gevent, os, signal, sys
t = []
signal.signal(signal.SIGUSR2, signal.SIG_IGN)
h = gevent.signal_handler(signal.SIGUSR2, lambda: t.append("h"))
os.kill(os.getpid(), signal.SIGUSR2)
gevent.sleep(0.02)
h.cancel()
t.append("cancelled")
print(t, flush=True)
os.kill(os.getpid(), signal.SIGUSR2)
gevent.sleep(0.02)
t.append("survived")
print(t)
