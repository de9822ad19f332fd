# Writes the promtool unit tests in this directory (python3 gen.py). Each test mirrors one
# of the daemon's rule tests (alert/rules_test.go, alert/hold_test.go): same sequence of
# inputs, same states expected at the same steps. The rule file they test is the output of
# `etcd-monitor rules` (rules.yml, written by TestRulesPromtool next to copies of them).
import os
OUT=os.path.dirname(os.path.abspath(__file__))

def run(vals):
    """compress a list of values (numbers or 'stale' or '_') into promtool notation"""
    out=[]; i=0
    while i < len(vals):
        v=vals[i]; j=i
        while j+1 < len(vals) and vals[j+1]==v and v!='stale': j+=1
        n=j-i
        sv = v if isinstance(v,str) else ('%g' % v)
        if n==0: out.append(sv)
        elif v=='_': out.append('_x%d' % (n+1))   # '_xN' is N blanks, 'axN' N+1 values
        else: out.append('%sx%d' % (sv, n))
        i=j+1
    return ' '.join(out)

def alerts(items):
    # items: list of (alertname, state, labels dict, severity)
    if not items: return '        exp_samples: []\n'
    s='        exp_samples:\n'
    for name, state, sev, labels in items:
        l = {'alertname':name,'alertstate':state,'severity':sev,'job':'etcd'}
        l.update(labels)
        ls=', '.join('%s="%s"' % (k,l[k]) for k in sorted(l))
        s+="          - labels: 'ALERTS{%s}'\n            value: 1\n" % ls
    return s

def check(t, items, sel=''):
    expr = 'ALERTS%s' % (('{'+sel+'}') if sel else '')
    return "      - expr: '%s'\n        eval_time: %s\n" % (expr, t) + alerts(items)

def series(name, labels, vals):
    l={'job':'etcd'}; l.update(labels)
    ls=', '.join('%s="%s"' % (k,l[k]) for k in sorted(l))
    return "      - series: '%s{%s}'\n        values: '%s'\n" % (name, ls, run(vals))

def header(doc):
    return doc + "rule_files: [rules.yml]\n"

def test(name, interval, ser, checks, eval_interval=None):
    s = "  # %s\n  - interval: %s\n" % (name, interval)
    s += "    input_series:\n" + ''.join(ser)
    s += "    promql_expr_test:\n" + ''.join(checks)
    return s

def m(i): return {'instance':'m%d'%i}
W,C='warning','critical'

# ---------- quorum.yml: health-based rules, checks every 5 s ----------
tests=[]
# Rolling restart: TestRuleRollingRestartFiresNothing. 57 checks 5 s apart: for m2, m3, m1 in
# turn 6 checks up then 13 down (60 s); when m1 (the leader) stops, one check sees no leader.
N=57
up={1:[1]*N,2:[1]*N,3:[1]*N}; hl={1:[1]*N,2:[1]*N,3:[1]*N}
k=0
for down in (2,3,1):
    k+=6
    for i in range(13):
        up[down][k+i]=0
        hl[down][k+i]= 'stale' if i==0 else '_'
        if down==1 and i==0:
            hl[2][k]=0; hl[3][k]=0
    k+=13
ser=[series('up',m(i),up[i]) for i in (1,2,3)]+[series('etcd_server_has_leader',m(i),hl[i]) for i in (1,2,3)]
t_elect=(6+13+6+13+6)*5
checks=[check('50s',[('EtcdMembersDown','pending',W,m(2))]),
        check('%ds'%t_elect,[('EtcdMembersDown','pending',W,m(1)),('EtcdNoLeader','pending',C,{})]),
        check('%ds'%(t_elect+5),[('EtcdMembersDown','pending',W,m(1))]),
        check('%ds'%((N-1)*5),[('EtcdMembersDown','pending',W,m(1))]),
        "      - expr: 'max_over_time(ALERTS{alertstate=\"firing\"}[5m])'\n        eval_time: %ds\n        exp_samples: []\n" % ((N-1)*5)]
tests.append(test('TestRuleRollingRestartFiresNothing: each member down 60 s in turn, quorum kept: nothing fires', '5s', ser, checks))

# Quorum loss then unreachable: TestRuleQuorumLossAndUnreachable.
N=73
up1=[1]+[0]*71+[1]; up3=[1]*60+[0]*12+[1]
hl1=[1,'stale']+['_']*70+[1]; hl3=[1]+[0]*59+['stale']+['_']*11+[1]
ser=[series('up',m(1),up1),series('up',m(2),up1),series('up',m(3),up3),
     series('etcd_server_has_leader',m(1),hl1),series('etcd_server_has_leader',m(2),hl1),series('etcd_server_has_leader',m(3),hl3)]
checks=[check('0s',[]),
        check('5s',[('EtcdAvailableMembersLow','pending',C,{}),('EtcdInsufficientMembers','firing',C,{}),('EtcdMembersDown','pending',W,m(1)),('EtcdMembersDown','pending',W,m(2))]),
        check('4m',[('EtcdAvailableMembersLow','firing',C,{}),('EtcdInsufficientMembers','firing',C,{}),('EtcdMembersDown','firing',W,m(1)),('EtcdMembersDown','firing',W,m(2))]),
        check('5m',[('EtcdAvailableMembersLow','firing',C,{}),('EtcdClusterUnreachable','firing',C,{}),('EtcdInsufficientMembers','firing',C,{}),('EtcdMembersDown','firing',W,m(1)),('EtcdMembersDown','firing',W,m(2)),('EtcdMembersDown','pending',W,m(3))]),
        check('6m',[])]
tests.append(test('TestRuleQuorumLossAndUnreachable: 2 of 3 down, then all, then all back', '5s', ser, checks))

# No leader: TestRuleNoLeader (the step at 8 s is not on the 5 s grid and is left out).
upa=[1]*20
hl12=[1,0,0,1,0,1]+[1]*14; hl3=[1,0,0,1,0,1]+[0]*14
ser=[series('up',m(i),upa) for i in (1,2,3)]+[series('etcd_server_has_leader',m(1),hl12),series('etcd_server_has_leader',m(2),hl12),series('etcd_server_has_leader',m(3),hl3)]
checks=[check('0s',[]),check('5s',[('EtcdNoLeader','pending',C,{})]),check('10s',[('EtcdNoLeader','firing',C,{})]),
        check('15s',[]),check('20s',[('EtcdNoLeader','pending',C,{})]),check('25s',[]),
        check('30s',[('EtcdMemberNoLeader','pending',C,m(3))]),check('95s',[('EtcdMemberNoLeader','firing',C,m(3))])]
tests.append(test('TestRuleNoLeader: no leader for 5 s fires, an election seen by one check does not; one member cut off', '5s', ser, checks))

doc='''# promtool unit tests of `etcd-monitor rules`, mirroring the daemon's rule tests in
# alert/rules_test.go (named above each test): the same sequences of member states, and at
# each checked step the same alerts absent, pending or firing. A member that is down is a
# failed scrape: up 0, and its other series stale.
'''
open(os.path.join(OUT,'quorum_test.yml'),'w').write(header(doc)+"evaluation_interval: 5s\ntests:\n"+'\n'.join(tests))

# ---------- counters_test.yml ----------
tests=[]
# TestRuleLeaderChanges: 1 m apart; m2 restarts at s2 (its counter starts again at 1).
m1=[1,1,2,3,4]+[5]*13; m2=[1,1,1,2,3]+[4]*13
ser=[series('etcd_server_leader_changes_seen_total',m(1),m1),series('etcd_server_leader_changes_seen_total',m(2),m2),
     series('etcd_server_leader_changes_seen_total',m(3),m1)]
LC='EtcdHighNumberOfLeaderChanges'
checks=[check('0m',[]),check('4m',[]),check('5m',[(LC,'pending',W,{})]),check('9m',[(LC,'pending',W,{})]),
        check('10m',[(LC,'firing',W,{})]),check('16m',[(LC,'firing',W,{})]),check('17m',[])]
tests.append(test('TestRuleLeaderChanges: 4 changes within 15 m, the most any member saw; a restart is no change', '1m', ser, checks))

# TestRuleFailedProposals: samples every 10 s, shifted by 40 s (four blanks first) so that
# the daemon's steps (0 s, 10 s, 20 s, then every minute from 1 m 20 s) from the third on
# fall on the evaluations, every minute. A burst of 23 in 20 s leaves the 15 m window before
# for (15 m) ends; then one failure per minute fires after 5 + 15 m.
vals=['_']*4+[0,3]+[23]*96
for j in range(25):
    vals += [24+j]*6
ser=[series('etcd_server_proposals_failed_total',m(1),vals)]
FP='EtcdHighNumberOfFailedProposals'
def at(sec): return '%ds'%(sec+40)
u=lambda i: 980+60*i
checks=[check(at(20),[(FP,'pending',W,m(1))]),check(at(860),[(FP,'pending',W,m(1))]),check(at(920),[]),
        check(at(u(4)),[]),check(at(u(5)),[(FP,'pending',W,m(1))]),check(at(u(19)),[(FP,'pending',W,m(1))]),
        check(at(u(20)),[(FP,'firing',W,m(1))]),check(at(u(24)),[(FP,'firing',W,m(1))])]
tests.append(test('TestRuleFailedProposals: an election burst never fires, a sustained failure does', '10s', ser, checks))

# TestRuleFailedGRPCRequests. The inputs start with 5 m of the first sample's values:
# Prometheus extrapolates rate() to the edges of a window its series do not fill; the
# daemon does not, and in a running system every window is full.
def grpc(code, vals, extra=''):
    return series('grpc_server_handled_total', {'instance':'m1','grpc_type':'unary','grpc_service':'etcdserverpb.KV','grpc_method':'Range','grpc_code':code}, vals)
ok=[1000]*5+[1000+1000*i for i in range(16)]
bad=[0]*5+[0,5,10,15]+[15+30*i for i in range(1,13)]
ser=[grpc('OK',ok),grpc('Unavailable',bad),grpc('NotFound',bad)]
G='EtcdHighNumberOfFailedGRPCRequests'
checks=[check('8m',[]),check('9m',[(G,'pending',W,m(1))]),check('18m',[(G,'pending',W,m(1))]),
        check('19m',[(G,'firing',W,m(1))]),check('20m',[(G,'firing',W,m(1))])]
tests.append(test('TestRuleFailedGRPCRequests: 0.5 % fires nothing; 3 % fires the warning after 10 m (NotFound is a client error)', '1m', ser, checks))
ok=[1000]*5+[1000+1000*i for i in range(12)]
bad=[0]*6+[110*i for i in range(1,12)]
ser=[grpc('OK',ok),grpc('Unavailable',bad),grpc('NotFound',bad)]
both=lambda c,w: [(G,c,C,m(1)),(G,w,W,m(1))]
checks=[check('5m',[]),check('6m',both('pending','pending')),check('10m',both('pending','pending')),check('11m',both('firing','pending')),
        check('15m',both('firing','pending')),check('16m',both('firing','firing'))]
tests.append(test('TestRuleFailedGRPCRequests: 10 % fires the critical tier after 5 m, the warning after 10 m', '1m', ser, checks))

# TestRulePendingProposals
vals=[1,1]+[50]*10
ser=[series('etcd_server_proposals_pending',m(1),vals)]
PP='EtcdHighNumberOfPendingProposals'
checks=[check('1m',[]),check('2m',[(PP,'pending',W,m(1))]),check('6m',[(PP,'pending',W,m(1))]),check('7m',[(PP,'firing',W,m(1))]),check('11m',[(PP,'firing',W,m(1))])]
tests.append(test('TestRulePendingProposals: more than 5 pending on average over 5 m, for 5 m', '1m', ser, checks))

doc='''# promtool unit tests of `etcd-monitor rules` over etcd's counters, mirroring the daemon's
# rule tests in alert/rules_test.go (named above each test): the same sequences, and at each
# checked step the same alerts absent, pending or firing.
'''
open(os.path.join(OUT,'counters_test.yml'),'w').write(header(doc)+"evaluation_interval: 1m\ntests:\n"+'\n'.join(tests))

# ---------- histograms_test.yml ----------
BOUNDS=[0.001*2**k for k in range(14)]+['+Inf']
def le_str(b): return b if isinstance(b,str) else ('%g' % b)
def hist_series(metric, labels, steps):
    """steps: list of (fast count cumulative, slow count cumulative, slow value, fast value)"""
    out=[]
    for b in BOUNDS:
        vals=[]
        for (F,S,sv,fv) in steps:
            c=0
            if b=='+Inf' or fv<=b: c+=F
            if b=='+Inf' or sv<=b: c+=S
            vals.append(c)
        l=dict(labels); l['le']=le_str(b)
        out.append(series(metric, l, vals))
    return out

tests=[]
for rule, metric, slow in [('EtcdMemberCommunicationSlow','etcd_network_peer_round_trip_time_seconds_bucket',0.3),
                           ('EtcdHighFsyncDurations','etcd_disk_wal_fsync_duration_seconds_bucket',0.7),
                           ('EtcdHighCommitDurations','etcd_disk_backend_commit_duration_seconds_bucket',0.4)]:
    steps=[]; F=0; S=0
    for i in range(6): F+=1000; steps.append((F,S,slow,0.002))
    for i in range(14): S+=1000; steps.append((F,S,slow,0.002))
    F,S=100,0; steps.append((F,S,slow,0.002))   # the member restarts
    for i in range(6): F+=1000; steps.append((F,S,slow,0.002))
    labels=dict(m(1))
    if rule=='EtcdMemberCommunicationSlow': labels['To']='m2id'
    ser=hist_series(metric, labels, steps)
    p=lambda st: [(rule,st,W,m(1))]
    w='severity="warning"'  # the Go test evaluates the warning tiers
    checks=[check('5m',[],w),check('6m',p('pending'),w),check('15m',p('pending'),w),check('16m',p('firing'),w),check('19m',p('firing'),w),
            check('20m',p('firing'),w),check('26m',[],w)]
    tests.append(test('TestRuleHistogramPercentiles/%s (warning tier): p99 over 5 m above the threshold for 10 m; a restart resets the buckets' % rule, '1m', ser, checks))
# the critical tier of fsync at 1 s
steps=[(10,0,3.0,0.002)]+[(10,100*i,3.0,0.002) for i in range(1,12)]
ser=hist_series('etcd_disk_wal_fsync_duration_seconds_bucket', m(1), steps)
F='EtcdHighFsyncDurations'
checks=[check('11m',[(F,'firing',C,m(1)),(F,'firing',W,m(1))])]
tests.append(test("TestRuleHistogramPercentiles: fsync's critical tier at 1 s", '1m', ser, checks))
doc='''# promtool unit tests of `etcd-monitor rules` over etcd's histograms, mirroring
# TestRuleHistogramPercentiles in alert/rules_test.go: the same cumulative buckets (etcd's
# disk-latency bounds, 1 ms doubling to 8.192 s), and at each checked step the same alerts
# absent, pending or firing.
'''
open(os.path.join(OUT,'histograms_test.yml'),'w').write(header(doc)+"evaluation_interval: 1m\ntests:\n"+'\n'.join(tests))

# ---------- database_test.yml ----------
MiB=1<<20; GiB=1<<30
tests=[]
def snapcase(name, rule, metrics, good, bad):
    # metrics: list of metric names; good/bad: dict metric -> value for m2; m1 always good
    ser=[]
    for met in metrics:
        ser.append(series(met, m(1), [good[met]]*14))
        ser.append(series(met, m(2), [good[met]]+[bad[met]]*12+[good[met]]))
    p=lambda st: [(rule,st,name_sev[rule],m(2))]
    checks=[check('0m',[]),check('1m',p('pending')),check('10m',p('pending')),check('11m',p('firing')),check('12m',p('firing')),check('13m',[])]
    tests.append(test('TestRuleSnapshotThresholds/%s' % rule, '1m', ser, checks))
name_sev={'EtcdDatabaseQuotaLowSpace':C,'EtcdDatabaseHighFragmentationRatio':W,'EtcdDiskSpaceLow':W}
DB,IU,Q='etcd_mvcc_db_total_size_in_bytes','etcd_mvcc_db_total_size_in_use_in_bytes','etcd_server_quota_backend_bytes'
snapcase('quota','EtcdDatabaseQuotaLowSpace',[DB,IU,Q],{DB:100*MiB,IU:90*MiB,Q:2*GiB},{DB:1990*MiB,IU:1990*MiB,Q:2*GiB})
snapcase('frag','EtcdDatabaseHighFragmentationRatio',[DB,IU,Q],{DB:300*MiB,IU:200*MiB,Q:2*GiB},{DB:1000*MiB,IU:200*MiB,Q:2*GiB})
A,Z='node_filesystem_avail_bytes','node_filesystem_size_bytes'
snapcase('disk','EtcdDiskSpaceLow',[A,Z],{A:50*GiB,Z:100*GiB},{A:5*GiB,Z:100*GiB})
open(os.path.join(OUT,'database_test.yml'),'w').write(header('''# promtool unit tests of `etcd-monitor rules` over the database and disk sizes, mirroring
# TestRuleSnapshotThresholds in alert/hold_test.go: member m2 crosses the threshold for 12
# minutes (for: 10 m), m1 stays below it.
''')+"evaluation_interval: 1m\ntests:\n"+'\n'.join(tests))

# ---------- growth_test.yml ----------
d=[(0,100*MiB),(10,1124*MiB),(20,100*MiB)]+[(20+600*k,100*MiB) for k in range(1,6)]
d+=[(3020+300*(j+1),100*MiB+100*MiB*(j+1)) for j in range(30)]
# Shifted by 280 s so that the daemon's steps from the third on (20 s, then every 5 or 10 m)
# fall on the evaluations, every 5 m.
d=[(t+280,v) for t,v in d]
end=d[-1][0]
at_={t:v for t,v in d}
vals=[at_.get(t,'_') for t in range(0,end+1,10)]
def at(sec): return '%ds'%(sec+280)
ser=[series(DB,m(1),vals),series(Q,m(1),[2*GiB]*(end//10+1))]
EG='EtcdExcessiveDatabaseGrowth'
g='alertname="%s"' % EG  # the Go test evaluates this rule alone (the quota fills too, at the end)
checks=[check(at(20),[],g),check(at(3020),[],g),check(at(5720),[],g),check(at(6020),[(EG,'pending',W,m(1))],g),
        check(at(6320),[(EG,'pending',W,m(1))],g),check(at(6620),[(EG,'firing',W,m(1))],g),check(at(end-280),[(EG,'firing',W,m(1))],g)]
open(os.path.join(OUT,'growth_test.yml'),'w').write(header('''# promtool unit test of `etcd-monitor rules`, mirroring TestRuleDatabaseGrowth in
# alert/rules_test.go: the same samples (a 1 GiB spike for 10 s, 50 m flat, then +100 MiB every
# 5 m against a 2 GiB quota; '_' is no sample), and at the daemon's steps the same state:
# nothing for the spike or with less than an hour of samples, pending when the regression
# over 4 h predicts the quota full within 4 h, firing 10 m later.
''')+"evaluation_interval: 5m\ntests:\n"+test('TestRuleDatabaseGrowth', '10s', ser, checks))

# ---------- raftlag_test.yml ----------
# TestRuleRaftIndexLag (alert/hold_test.go): 30 s apart, the leader applies 50k entries/s
# for 2 minutes with m3 5000 entries behind (0.1 s of applies: healthy), then nothing while
# m3 stays 5000 behind: pending once the leader's rate over the last minute is 0, firing 2 m
# later.
applied=[1500000*(k+1) for k in range(4)]+[6000000]*7
ser=[series('etcd_server_proposals_committed_total',m(1),applied),series('etcd_server_proposals_committed_total',m(2),applied),
     series('etcd_server_proposals_committed_total',m(3),[a-5000 for a in applied]),
     series('etcd_server_proposals_applied_total',m(1),applied),series('etcd_server_proposals_applied_total',m(2),applied),
     series('etcd_server_proposals_applied_total',m(3),[a-5000 for a in applied])]
RL='EtcdRaftIndexLag'
checks=[check('0s',[]),check('90s',[]),check('120s',[]),check('150s',[(RL,'pending',W,m(3))]),check('240s',[(RL,'pending',W,m(3))]),
        check('270s',[(RL,'firing',W,m(3))]),check('300s',[(RL,'firing',W,m(3))])]
open(os.path.join(OUT,'raftlag_test.yml'),'w').write(header('''# promtool unit test of `etcd-monitor rules`, mirroring TestRuleRaftIndexLag in
# alert/hold_test.go: the same raft indexes and applies, and at each step the same state.
''')+"evaluation_interval: 30s\ntests:\n"+test("TestRuleRaftIndexLag: lag judged against the leader's apply rate", '30s', ser, checks))
