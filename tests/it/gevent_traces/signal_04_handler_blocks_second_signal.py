# The handler sleeps; the signal arrives again meanwhile: a second handler
# greenlet runs alongside the first.
import gevent, os, signal
t = []
n = [0]
def handler():
    n[0] += 1
    k = n[0]
    t.append("h%d-start" % k)
    gevent.sleep(0.03)
    t.append("h%d-end" % k)
h = gevent.signal_handler(signal.SIGUSR1, handler)
os.kill(os.getpid(), signal.SIGUSR1)
gevent.sleep(0.01)
t.append("main-raise2")
os.kill(os.getpid(), signal.SIGUSR1)
gevent.sleep(0.06)
t.append("main")
h.cancel()
print(t)
