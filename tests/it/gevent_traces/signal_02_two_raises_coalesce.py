# Two signals of one kind before the hub runs: the handler runs once.
import gevent, os, signal
t = []
h = gevent.signal_handler(signal.SIGUSR1, lambda: t.append("h"))
os.kill(os.getpid(), signal.SIGUSR1)
os.kill(os.getpid(), signal.SIGUSR1)
gevent.sleep(0.02)
t.append("main")
h.cancel()
print(t)
