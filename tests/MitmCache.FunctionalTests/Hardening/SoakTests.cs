using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Tests.Common;
using Xunit.Abstractions;

namespace MitmCache.FunctionalTests.Hardening;

/// <summary>
/// Mixed load against the proxy process: hits and misses on three registries, clients coming and
/// going, every upstream flapping. No pull of an image that was cached may fail; RSS must stay flat,
/// file descriptors must not leak, and the index must match the files afterwards.
/// CI runs 45 s with 10 s flaps; <c>MITMCACHE_SOAK_SECONDS=600 MITMCACHE_SOAK_FLAP_SECONDS=30</c> is the full soak.
/// </summary>
[Trait("Category", "Soak")]
public sealed class SoakTests(ITestOutputHelper output)
{
    private sealed record Image(FaultyRegistry Registry, string Repository, string Tag, string ManifestDigest, IReadOnlyList<(string Digest, byte[] Bytes)> Blobs);

    [Fact]
    public async Task MixedLoadWithFlappingUpstreams_NoCachedPullFails_FlatRss_NoFdLeak_IndexConsistent()
    {
        var seconds = Setting("MITMCACHE_SOAK_SECONDS", 45);
        var flap = TimeSpan.FromSeconds(Setting("MITMCACHE_SOAK_FLAP_SECONDS", 10));
        using var dir = TempDir.Create("mitmcache-soak");
        var pki = TestPki.Create(dir.Combine("pki"));
        var registries = new List<FaultyRegistry>();
        for (var i = 1; i <= 3; i++)
        {
            registries.Add(await FaultyRegistry.StartAsync(pki, $"r{i}.test"));
        }

        var random = new Random(2026);
        var images = new List<Image>();
        foreach (var registry in registries)
        {
            for (var n = 0; n < 40; n++)
            {
                var blobs = Enumerable.Range(0, 3).Select(_ => RandomNumberGenerator.GetBytes(random.Next(20_000, 300_000))).Select(b => (registry.Add(b), b)).ToList();
                var manifest = Encoding.UTF8.GetBytes(
                    $$"""{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[{{string.Join(',', blobs.Select(b => $$"""{"digest":"{{b.Item1}}","size":{{b.b.Length}}}"""))}}]}""");
                var digest = registry.Add(manifest, "application/vnd.oci.image.manifest.v1+json");
                registry.Tag($"soak/app{n}", "v1", digest);
                images.Add(new Image(registry, $"soak/app{n}", "v1", digest, blobs));
            }
        }

        var port = FreePort.Get();
        List<string> arguments = ["--no-default-intercept", "--upstream-ca", pki.CaCertPath, "--upstream-timeout", "2s"];
        foreach (var registry in registries)
        {
            arguments.AddRange(["--intercept", registry.Host, "--allow-port", $"{registry.Port}", "--connect-to", $"{registry.Host}:{registry.Port}:127.0.0.1:{registry.Port}"]);
        }

        using var proxy = await ProxyProcess.StartAsync(dir.Combine("proxy"), port, [.. arguments]);
        var cached = new System.Collections.Concurrent.ConcurrentDictionary<Image, bool>();
        long pulls = 0, failedCached = 0, failedUncached = 0;
        var stop = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));

        // Warm a third of the images, then take the baseline fd count.
        foreach (var image in images.Where((_, i) => i % 3 == 0))
        {
            using var client = ProxyClients.Create(proxy.Url, proxy.CaBundlePath);
            Assert.True(await PullAsync(client, image), "warm-up pull");
            cached[image] = true;
        }

        var fdBefore = FdCount(proxy.Pid, port);
        var kindsBefore = FdKinds(proxy.Pid);
        var rss = new List<(double Seconds, long Kb)>();
        var clock = Stopwatch.StartNew();
        var sampler = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                rss.Add((clock.Elapsed.TotalSeconds, RssKb(proxy.Pid)));
                await Task.Delay(1000);
            }
        });
        var flapper = Task.Run(async () =>
        {
            var faults = new[] { UpstreamFault.Reset, UpstreamFault.Status503, UpstreamFault.Status429, UpstreamFault.Stall };
            var turn = 0;
            while (!stop.IsCancellationRequested)
            {
                await Task.Delay(flap / 2, CancellationToken.None);
                var registry = registries[turn % registries.Count];
                registry.Fault = registry.Fault == UpstreamFault.None ? faults[turn % faults.Length] : UpstreamFault.None;
                turn++;
            }
        });
        var workers = Enumerable.Range(0, 8).Select(worker => Task.Run(async () =>
        {
            var rng = new Random(worker);
            while (!stop.IsCancellationRequested)
            {
                using var client = ProxyClients.Create(proxy.Url, proxy.CaBundlePath); // a client appears ...
                for (var n = rng.Next(1, 5); n > 0 && !stop.IsCancellationRequested; n--)
                {
                    var image = images[rng.Next(images.Count)];
                    var wasCached = cached.ContainsKey(image);
                    var ok = await PullAsync(client, image);
                    Interlocked.Increment(ref pulls);
                    if (ok)
                    {
                        cached[image] = true;
                    }
                    else if (wasCached)
                    {
                        Interlocked.Increment(ref failedCached);
                        output.WriteLine($"FAILED cached pull {image.Registry.Host}/{image.Repository} at {clock.Elapsed.TotalSeconds:0.0}s");
                    }
                    else
                    {
                        Interlocked.Increment(ref failedUncached);
                    }
                }
            } // ... and goes away
        })).ToList();

        await Task.WhenAll(workers);
        await sampler;
        await flapper;
        registries.ForEach(r => r.Fault = UpstreamFault.None);
        // Closed client connections go at once. Pooled upstream connections that a flapping registry reset while it
        // was known down were not used again (requests skip a down host), so their sockets, closed by the peer and
        // gone from /proc/net/tcp, are released by the pool's scavenger, which runs every quarter of the 60 s idle
        // timeout: wait up to two of its rounds.
        await Poll.UntilAsync(() => FdCount(proxy.Pid, port) <= fdBefore + 2, TimeSpan.FromSeconds(40));
        var fdAfter = FdCount(proxy.Pid, port);
        var upstreamSockets = UpstreamSockets(proxy.Pid, registries.Select(r => r.Port).ToHashSet());
        output.WriteLine($"fds before: {kindsBefore}; after: {FdKinds(proxy.Pid)}");
        var slope = Slope(rss.Skip(rss.Count / 5).ToList());
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"soak {seconds}s, flap {flap.TotalSeconds}s: {pulls} pulls, {failedCached} failed cached, {failedUncached} failed uncached (upstream down), " +
            $"RSS {rss.Min(r => r.Kb) / 1024} to {rss.Max(r => r.Kb) / 1024} MiB, slope {slope:0.0} KiB/s, client sockets and blob fds {fdBefore} -> {fdAfter}, pooled upstream connections {upstreamSockets}"));

        Assert.Equal(0, failedCached);
        Assert.True(pulls > 50, $"only {pulls} pulls");
        Assert.True(fdAfter <= fdBefore + 2, $"client sockets and blob file descriptors grew from {fdBefore} to {fdAfter}: {SocketReport(proxy.Pid)}");
        Assert.True(upstreamSockets <= 3 * 8 * 2, $"{upstreamSockets} upstream connections: more than the pool can need");
        Assert.True(rss.Max(r => r.Kb) < 400 * 1024, "RSS stays bounded");

        // The index matches the files: a restart repairs nothing.
        Assert.Equal(0, await proxy.TerminateAsync(TimeSpan.FromSeconds(30)));
        using var restarted = await ProxyProcess.StartAsync(dir.Combine("proxy"), port, [.. arguments]);
        Assert.Contains("\"Dropped\":0,\"Adopted\":0,\"Removed\":0", restarted.Output, StringComparison.Ordinal);
        foreach (var registry in registries)
        {
            await registry.DisposeAsync();
        }
    }

    private static async Task<bool> PullAsync(HttpClient client, Image image)
    {
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"https://{image.Registry.Authority}/v2/{image.Repository}/manifests/{image.Tag}");
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/vnd.oci.image.manifest.v1+json"));
            using var manifest = await client.SendAsync(request);
            if (manifest.StatusCode != HttpStatusCode.OK || manifest.Headers.GetValues("Docker-Content-Digest").Single() != image.ManifestDigest)
            {
                return false;
            }

            foreach (var (digest, bytes) in image.Blobs)
            {
                var body = await client.GetByteArrayAsync($"https://{image.Registry.Authority}/v2/{image.Repository}/blobs/{digest}");
                if (!body.AsSpan().SequenceEqual(bytes))
                {
                    throw new InvalidOperationException($"WRONG BYTES for {digest}"); // never acceptable
                }
            }

            return true;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
        {
            return false;
        }
    }

    /// <summary>
    /// Descriptors that would leak per request: blob and fill files, and sockets other than pooled
    /// upstream connections (those idle out after a minute, bounded by concurrency). Libraries are
    /// opened lazily by the runtime, and LiteDB keeps a small pool of reader handles.
    /// </summary>
    private static int FdCount(int pid, int proxyPort)
    {
        var upstream = SocketInodes(pid, (_, remote) => remote != 0 && remote != proxyPort, proxyPort);
        return FdTargets(pid).Count(t =>
            (t.StartsWith("socket:[", StringComparison.Ordinal) && !upstream.Contains(t[8..^1]))
            || t.Contains("/blobs/", StringComparison.Ordinal) || t.EndsWith(".part", StringComparison.Ordinal));
    }

    private static int UpstreamSockets(int pid, HashSet<int> ports)
    {
        var inodes = SocketInodes(pid, (_, remote) => ports.Contains(remote), 0);
        return FdTargets(pid).Count(t => t.StartsWith("socket:[", StringComparison.Ordinal) && inodes.Contains(t[8..^1]));
    }

    /// <summary>Inodes of TCP sockets of the process's network namespace matching (local port, remote port).</summary>
    private static HashSet<string> SocketInodes(int pid, Func<int, int, bool> match, int proxyPort)
    {
        var inodes = new HashSet<string>();
        foreach (var table in new[] { $"/proc/{pid}/net/tcp", $"/proc/{pid}/net/tcp6" })
        {
            foreach (var line in File.ReadLines(table).Skip(1))
            {
                var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                var local = int.Parse(fields[1][(fields[1].LastIndexOf(':') + 1)..], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                var remote = int.Parse(fields[2][(fields[2].LastIndexOf(':') + 1)..], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                if (local != proxyPort && match(local, remote))
                {
                    inodes.Add(fields[9]);
                }
            }
        }

        return inodes;
    }

    private static List<string> FdTargets(int pid) => Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd")
        .Select(fd => { try { return new FileInfo(fd).LinkTarget ?? "?"; } catch (IOException) { return "gone"; } }).ToList();

    /// <summary>Each TCP socket of the process: local port, remote port, state (hex, as in /proc/net/tcp), for a leak report.</summary>
    private static string SocketReport(int pid)
    {
        var rows = new Dictionary<string, string>();
        foreach (var kind in new[] { "tcp", "tcp6", "udp", "udp6" })
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/net/{kind}").Skip(1))
            {
                var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                rows[f[9]] = $"{kind} {f[1][(f[1].LastIndexOf(':') + 1)..]}->{f[2][(f[2].LastIndexOf(':') + 1)..]} st {f[3]}";
            }
        }

        foreach (var line in File.ReadLines($"/proc/{pid}/net/unix").Skip(1))
        {
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            rows[f[6]] = "unix " + (f.Length > 7 ? f[7] : "");
        }

        foreach (var line in File.ReadLines($"/proc/{pid}/net/netlink").Skip(1))
        {
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            rows[f[^1]] = "netlink";
        }

        return string.Join("; ", FdTargets(pid).Where(t => t.StartsWith("socket:[", StringComparison.Ordinal))
            .Select(t => rows.GetValueOrDefault(t[8..^1], "unknown")));
    }

    /// <summary>Open files by kind (sockets, blob files, ...), for a leak report.</summary>
    private static string FdKinds(int pid) => string.Join(", ", Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd")
        .Select(fd => { try { return new FileInfo(fd).LinkTarget ?? "?"; } catch (IOException) { return "gone"; } })
        .Select(target => target.StartsWith("socket:", StringComparison.Ordinal) ? "socket" : target.Contains("/blobs/", StringComparison.Ordinal) ? "blob" : target.Contains("/tmp/", StringComparison.Ordinal) && target.EndsWith(".part", StringComparison.Ordinal) ? "fill" : target.StartsWith("anon_inode", StringComparison.Ordinal) ? "anon" : target.StartsWith("pipe:", StringComparison.Ordinal) ? "pipe" : "file")
        .GroupBy(k => k).OrderBy(g => g.Key).Select(g => $"{g.Key} {g.Count()}"));

    private static long RssKb(int pid)
    {
        var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
    }

    /// <summary>Least-squares slope of RSS over time, KiB per second.</summary>
    private static double Slope(IReadOnlyList<(double X, long Y)> points)
    {
        if (points.Count < 2)
        {
            return 0;
        }

        var meanX = points.Average(p => p.X);
        var meanY = points.Average(p => (double)p.Y);
        var numerator = points.Sum(p => (p.X - meanX) * (p.Y - meanY));
        var denominator = points.Sum(p => (p.X - meanX) * (p.X - meanX));
        return denominator == 0 ? 0 : numerator / denominator;
    }

    private static int Setting(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), out var value) && value > 0 ? value : fallback;
}
