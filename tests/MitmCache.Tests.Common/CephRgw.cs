using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Amazon.Runtime;
using Amazon.S3;

namespace MitmCache.Tests.Common;

/// <summary>
/// A real S3 engine on loopback: Ceph's RADOS Gateway (Debian's <c>radosgw</c> 16.2) on a private
/// one-node cluster (<c>ceph-mon</c> + one <c>memstore</c> <c>ceph-osd</c>), every file under a temp
/// directory, nothing read from /etc/ceph or /var/lib/ceph. Keys are random per engine, so a test can
/// look for them in logs. The gateway can be killed, frozen and started again while the cluster (and
/// its objects) stays up: from a client's side that is the engine dying, hanging and coming back.
/// </summary>
/// <remarks>
/// Ports: <c>Port</c> is S3, <c>Port+1</c> the monitor (msgr2 only), <c>Port+2..Port+9</c> for the OSD.
/// They are taken below the kernel's ephemeral range, so other tests' <c>FreePort</c> ports never collide.
/// The tuning in <see cref="WriteConfig"/> is what makes start-up take about 2 s instead of about 12 s.
/// </remarks>
public sealed class CephRgw : IAsyncDisposable
{
    public const string Region = "us-east-1";

    private static readonly TimeSpan s_startTimeout = TimeSpan.FromSeconds(60);

    private readonly TempDir _dir;
    private readonly string _config;
    private BackgroundProcess? _mon;
    private BackgroundProcess? _osd;
    private BackgroundProcess? _gateway;

    private CephRgw(TempDir dir, int port)
    {
        _dir = dir;
        Port = port;
        _config = dir.Combine("ceph.conf");
        AccessKey = "MC" + RandomString("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 18);
        SecretKey = RandomString("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", 40);
    }

    public int Port { get; }

    public Uri Endpoint => new($"http://127.0.0.1:{Port}");

    public string AccessKey { get; }

    public string SecretKey { get; }

    /// <summary>From the first process started to the first signed request answered.</summary>
    public TimeSpan StartTime { get; private set; }

    /// <summary>The S3 gateway's PID while it runs (it changes on each <see cref="StartGatewayAsync"/>).</summary>
    public int? GatewayPid => _gateway?.Pid;

    /// <summary>The standard variables an S3 client reads its credentials from.</summary>
    public IReadOnlyDictionary<string, string> CredentialVariables => new Dictionary<string, string>
    {
        ["AWS_ACCESS_KEY_ID"] = AccessKey,
        ["AWS_SECRET_ACCESS_KEY"] = SecretKey,
        ["AWS_REGION"] = Region,
    };

    /// <summary>Starts the cluster and the gateway; returns once a signed ListBuckets succeeds. Creates <paramref name="buckets"/>.</summary>
    public static async Task<CephRgw> StartAsync(IEnumerable<string>? buckets = null, CancellationToken ct = default)
    {
        for (var attempt = 1; ; attempt++)
        {
            var engine = new CephRgw(TempDir.Create("ceph-rgw"), FindFreePortRange(10));
            try
            {
                await engine.LaunchAsync(ct);
                foreach (var bucket in buckets ?? [])
                {
                    using var client = engine.CreateClient();
                    await client.PutBucketAsync(bucket, ct);
                }

                return engine;
            }
            catch (InvalidOperationException) when (attempt < 3)
            {
                // Most likely a port of the range was taken meanwhile: a new range, a new cluster.
                await engine.DisposeAsync();
            }
            catch
            {
                await engine.DisposeAsync();
                throw;
            }
        }
    }

    /// <summary>
    /// An SDK client with the settings an S3-compatible engine needs (path-style, checksums only when
    /// required, no proxy, no retries), for tests that look at or tamper with objects directly.
    /// </summary>
    public AmazonS3Client CreateClient()
    {
        var config = new AmazonS3Config
        {
            ServiceURL = Endpoint.ToString(),
            ForcePathStyle = true,
            AuthenticationRegion = Region,
            RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
            ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
            MaxErrorRetry = 0,
            HttpClientFactory = new DirectHttpClientFactory(),
        };
        return new AmazonS3Client(new BasicAWSCredentials(AccessKey, SecretKey), config);
    }

    /// <summary>SIGKILL to the gateway: connections reset, new ones refused. The cluster and its objects stay.</summary>
    public void KillGateway()
    {
        _gateway?.Dispose();
        _gateway = null;
    }

    /// <summary>SIGSTOP to the gateway: connections are accepted by the kernel and never answered.</summary>
    public Task FreezeGatewayAsync() => SignalGatewayAsync("-STOP");

    /// <summary>SIGCONT: a frozen gateway answers again.</summary>
    public Task ThawGatewayAsync() => SignalGatewayAsync("-CONT");

    /// <summary>Starts the gateway again (after <see cref="KillGateway"/>) and waits for a signed request to succeed.</summary>
    public async Task StartGatewayAsync(CancellationToken ct = default)
    {
        if (_gateway is { HasExited: false })
        {
            return;
        }

        _gateway?.Dispose();
        _gateway = Start("radosgw", "-f", "-n", "client.rgw.s3");
        await WaitUntilSignedRequestSucceedsAsync(ct);
    }

    /// <summary>The daemons' own logs, for failure messages.</summary>
    public string DescribeLogs()
    {
        var logs = Directory.Exists(_dir.Combine("log")) ? Directory.GetFiles(_dir.Combine("log")) : [];
        return string.Join('\n', logs.Select(f => $"--- {Path.GetFileName(f)}\n{string.Join('\n', File.ReadLines(f).TakeLast(15))}"));
    }

    public ValueTask DisposeAsync()
    {
        // SIGKILL ends a frozen process too. Memstore keeps nothing worth a clean shutdown; radosgw first (it hangs if the OSD goes first).
        KillGateway();
        _osd?.Dispose();
        _mon?.Dispose();
        _dir.Dispose();
        return ValueTask.CompletedTask;
    }

    private async Task LaunchAsync(CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        foreach (var sub in new[] { "mon/mon.a", "osd/osd.0", "rgw", "log", "run", "crash" })
        {
            Directory.CreateDirectory(_dir.Combine(sub));
        }

        var fsid = Guid.NewGuid().ToString();
        await File.WriteAllTextAsync(_config, WriteConfig(fsid) + "\n", ct); // the parser wants the last line ended
        var monmap = _dir.Combine("monmap");
        await RunAsync(ct, "monmaptool", "--create", "--add", "a", $"v2:127.0.0.1:{Port + 1}", "--fsid", fsid, monmap);
        await RunAsync(ct, "ceph-mon", "-c", _config, "--mkfs", "-i", "a", "--monmap", monmap);
        _mon = Start("ceph-mon", "-f", "-i", "a");

        var osdUuid = Guid.NewGuid().ToString();
        var osdId = (await RunAsync(ct, "ceph", "-c", _config, "--connect-timeout", "30", "osd", "new", osdUuid)).Trim();
        if (osdId != "0")
        {
            throw new InvalidOperationException($"ceph osd new answered '{osdId}', expected 0\n{DescribeLogs()}");
        }

        await RunAsync(ct, "ceph-osd", "-c", _config, "-i", "0", "--mkfs", "--osd-uuid", osdUuid);
        _osd = Start("ceph-osd", "-f", "-i", "0");
        _gateway = Start("radosgw", "-f", "-n", "client.rgw.s3");

        // radosgw opens its port only once its pools exist, i.e. once the OSD is up.
        var deadline = DateTime.UtcNow + s_startTimeout;
        while (!await FreePort.IsListeningAsync(Port))
        {
            ThrowIfDead(deadline);
            await Task.Delay(50, ct);
        }

        await RunAsync(ct, "radosgw-admin", "-c", _config, "user", "create", "--uid=test", "--display-name=test",
            $"--access-key={AccessKey}", $"--secret-key={SecretKey}");
        await WaitUntilSignedRequestSucceedsAsync(ct);
        StartTime = clock.Elapsed;
    }

    private async Task WaitUntilSignedRequestSucceedsAsync(CancellationToken ct)
    {
        using var client = CreateClient();
        var deadline = DateTime.UtcNow + s_startTimeout;
        Exception? last = null;
        while (true)
        {
            ThrowIfDead(deadline, last);
            try
            {
                using var attempt = CancellationTokenSource.CreateLinkedTokenSource(ct);
                attempt.CancelAfter(TimeSpan.FromSeconds(5));
                await client.ListBucketsAsync(attempt.Token);
                return;
            }
            catch (Exception ex) when (ex is AmazonServiceException or HttpRequestException or IOException
                or OperationCanceledException && !ct.IsCancellationRequested)
            {
                last = ex;
            }

            await Task.Delay(50, ct);
        }
    }

    private void ThrowIfDead(DateTime deadline, Exception? last = null)
    {
        foreach (var (name, process) in new[] { ("ceph-mon", _mon), ("ceph-osd", _osd), ("radosgw", _gateway) })
        {
            if (process is { HasExited: true })
            {
                throw new InvalidOperationException($"{name} exited with {process.ExitCode}\n{process.DescribeOutput()}\n{DescribeLogs()}");
            }
        }

        if (DateTime.UtcNow > deadline)
        {
            throw new TimeoutException($"the Ceph S3 gateway on port {Port} was not ready in {s_startTimeout}: {last?.Message}\n{DescribeLogs()}");
        }
    }

    private BackgroundProcess Start(string program, params string[] args) =>
        BackgroundProcess.Start($"/usr/bin/{program}", ["-c", _config, .. args]);

    private async Task SignalGatewayAsync(string signal)
    {
        if (_gateway is { } gateway)
        {
            await RunAsync(CancellationToken.None, "kill", signal, gateway.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
    }

    private async Task<string> RunAsync(CancellationToken ct, string program, params string[] args)
    {
        var result = await ProcessRunner.RunAsync(program.StartsWith('/') || program == "kill" ? program : $"/usr/bin/{program}", args,
            timeout: s_startTimeout, ct: ct);
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"{program} {string.Join(' ', args)} failed ({result.ExitCode}): {result.StdErr}\n{DescribeLogs()}");
        }

        return result.StdOut;
    }

    /// <summary>A base port whose <paramref name="count"/> successors are free, below the ephemeral range (32768+).</summary>
    private static int FindFreePortRange(int count)
    {
        for (var attempt = 0; attempt < 100; attempt++)
        {
            var start = Random.Shared.Next(20_000, 32_000 - count);
            if (Enumerable.Range(start, count).All(IsFree))
            {
                return start;
            }
        }

        throw new InvalidOperationException("no free range of ports for the Ceph S3 engine");
    }

    private static bool IsFree(int port)
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static string RandomString(string alphabet, int length) =>
        new([.. Enumerable.Range(0, length).Select(_ => alphabet[RandomNumberGenerator.GetInt32(alphabet.Length)])]);

    private string WriteConfig(string fsid) => $"""
        [global]
        fsid = {fsid}
        mon host = v2:127.0.0.1:{Port + 1}
        public addr = 127.0.0.1
        cluster addr = 127.0.0.1
        # no cephx inside the cluster; radosgw defaults to a "secure" mon connection, which auth none cannot give
        auth cluster required = none
        auth service required = none
        auth client required = none
        ms mon client mode = crc
        ms bind msgr1 = false
        ms bind port min = {Port + 2}
        ms bind port max = {Port + 9}
        run dir = {_dir.Combine("run")}
        admin socket = {_dir.Combine("run")}/$name.asok
        log file = {_dir.Combine("log")}/$name.log
        mon cluster log file = {_dir.Combine("log")}/cluster.log
        crash dir = {_dir.Combine("crash")}
        mon data = {_dir.Combine("mon")}/$name
        osd data = {_dir.Combine("osd")}/$name
        rgw data = {_dir.Combine("rgw")}
        keyring = {_dir.Combine("keyring")}
        osd pool default size = 1
        osd pool default min size = 1
        osd pool default pg num = 8
        osd pool default pgp num = 8
        osd pool default pg autoscale mode = off
        osd crush chooseleaf type = 0
        mon allow pool size one = true
        mon max pg per osd = 1000
        mon warn on pool no redundancy = false
        mon warn on insecure global id reclaim allowed = false
        mon data avail crit = 0
        mon data avail warn = 1
        # each osdmap change (the OSD booting, every pool radosgw creates) waits for a paxos proposal: 1 s by default
        paxos propose interval = 0.02
        paxos min wait = 0.01
        # radosgw starts before the OSD is up and re-checks for a newer osdmap only every tick (5 s by default)
        objecter tick interval = 0.2
        osd objectstore = memstore
        memstore device bytes = 4294967296

        [client.rgw.s3]
        rgw frontends = beast endpoint=127.0.0.1:{Port}
        rgw thread pool size = 64
        # deleted object data is freed by the garbage collector, 2 h later by default; memstore holds it in RAM
        rgw gc obj min wait = 10
        rgw gc processor period = 10
        """;

    /// <summary>HttpClient without a proxy: a developer's <c>HTTP_PROXY</c> must not capture 127.0.0.1.</summary>
    private sealed class DirectHttpClientFactory : HttpClientFactory
    {
        public override HttpClient CreateHttpClient(IClientConfig clientConfig) =>
            new(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false, ConnectTimeout = TimeSpan.FromSeconds(5) });
    }
}
