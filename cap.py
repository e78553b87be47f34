from wsraw import *
import json,time
ws=[WS() for _ in range(3)]
w4=WS(); print("4th:",w4.status,getattr(w4,"body",b"")[-200:])
ws[0].shutdown(); time.sleep(0.5)
w5=WS(); print("after one closed:",w5.status)
f=ws[1]; f.drain(0.2)
for i in range(60): f.send_text(json.dumps({"type":"ping","id":i}))
out=f.drain(3)
print("pongs",sum(1 for m in out if m[0]=="text" and "pong" in m[1]), [m for m in out if m[0]!="text" or "pong" not in m[1]][:5])
