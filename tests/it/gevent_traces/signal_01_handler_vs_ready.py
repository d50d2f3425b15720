# A signal arrives while main runs; main spawned x and then yields: when
# does the handler run?
import gevent, os, signal
t = []
h = gevent.signal_handler(signal.SIGUSR1, lambda: t.append("h"))
gevent.spawn(t.append, "x")
os.kill(os.getpid(), signal.SIGUSR1)
t.append("raised")
gevent.spawn(t.append, "y")
gevent.sleep(0)
t.append("main-sleep0")
gevent.sleep(0.02)
t.append("main")
h.cancel()
print(t)
