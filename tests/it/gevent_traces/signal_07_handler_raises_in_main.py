# The handler raises: the exception is raised in main at its blocking call.
import gevent, os, signal
t = []
def handler():
    t.append("h")
    raise ValueError("boom")
h = gevent.signal_handler(signal.SIGUSR1, handler)
gevent.spawn(t.append, "x")
os.kill(os.getpid(), signal.SIGUSR1)
try:
    gevent.sleep(0.05)
    t.append("main-slept")
except ValueError as e:
    t.append("main-caught-" + str(e))
gevent.sleep(0.01)
t.append("main")
h.cancel()
print(t)
