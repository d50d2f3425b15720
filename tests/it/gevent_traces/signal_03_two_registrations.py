# Two registrations for one signal: both run, in registration order.
import gevent, os, signal
t = []
h1 = gevent.signal_handler(signal.SIGUSR1, lambda: t.append("h1"))
h2 = gevent.signal_handler(signal.SIGUSR1, lambda: t.append("h2"))
os.kill(os.getpid(), signal.SIGUSR1)
gevent.sleep(0.02)
t.append("after-first")
h1.cancel()
os.kill(os.getpid(), signal.SIGUSR1)
gevent.sleep(0.02)
t.append("main")
h2.cancel()
print(t)
