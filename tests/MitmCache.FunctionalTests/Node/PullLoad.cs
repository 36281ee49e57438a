using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Node;

/// <summary>
/// Clients pulling one cached image in a loop through the proxy, as a node's runtimes would: skopeo
/// copies and ctr content fetches (each ctr client in its own containerd namespace, its content
/// removed after each pull so the next one transfers it again), plus a prober that opens a new
/// connection every 10 ms and asks <c>/healthz</c>. Every outcome is the client's own: exit codes and
/// socket errors, never the proxy's log.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
internal sealed class PullLoad : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _loops = [];
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    private PullLoad()
    {
    }

    public ConcurrentBag<Attempt> Pulls { get; } = [];

    public ConcurrentBag<Attempt> Probes { get; } = [];

    /// <summary>Time since the load started: attempts are stamped with it.</summary>
    public TimeSpan Now => _clock.Elapsed;

    public static PullLoad Start(NodeFixture node, int skopeoClients, int ctrClients)
    {
        var load = new PullLoad();
        for (var i = 0; i < skopeoClients; i++)
        {
            var dir = Directory.CreateDirectory(node.World.Dir.Combine($"load-skopeo-{i}")).FullName;
            load._loops.Add(load.LoopAsync($"skopeo {i}", async (n, ct) =>
            {
                var target = Path.Combine(dir, n.ToString(System.Globalization.CultureInfo.InvariantCulture));
                var result = await Skopeo.CopyToOciAsync(node.Reference, target, node.ProxyUrl, node.CaBundle, null, false, ct);
                if (Directory.Exists(target))
                {
                    Directory.Delete(target, recursive: true);
                }

                return result;
            }));
        }

        for (var i = 0; i < ctrClients; i++)
        {
            var ns = $"load{i}";
            load._loops.Add(load.LoopAsync($"ctr {i}", async (_, ct) =>
            {
                var result = await Ctr(node, ns, ["content", "fetch", "--tlscacert", node.CaBundle, node.Reference], ct);
                await Ctr(node, ns, ["content", "rm", .. node.Image.Blobs.Select(b => b.Digest).Prepend(node.Image.ManifestDigest)], ct);
                return result;
            }));
        }

        load._loops.Add(load.ProbeAsync(node.ProxyPort));
        return load;
    }

    private static Task<ProcessResult> Ctr(NodeFixture node, string ns, string[] args, CancellationToken ct) =>
        ProcessRunner.RunAsync("/usr/bin/ctr", ["-a", node.Containerd.Address, "-n", ns, .. args],
            new Dictionary<string, string?> { ["HTTPS_PROXY"] = node.ProxyUrl }, ct: ct);

    private async Task LoopAsync(string client, Func<int, CancellationToken, Task<ProcessResult>> pull)
    {
        for (var n = 0; !_stop.IsCancellationRequested; n++)
        {
            var start = Now;
            ProcessResult result;
            try
            {
                result = await pull(n, CancellationToken.None); // a pull in progress always runs to its end
            }
            catch (IOException ex)
            {
                result = new ProcessResult(-1, "", ex.Message);
            }

            Pulls.Add(new Attempt(client, start, Now, result.Succeeded, result.Succeeded ? "" : result.ToString()));
        }
    }

    /// <summary>A new connection every 10 ms: connect, <c>GET /healthz</c>, read the status line.</summary>
    private async Task ProbeAsync(int port)
    {
        var request = Encoding.ASCII.GetBytes("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        while (!_stop.IsCancellationRequested)
        {
            var start = Now;
            string? error = null;
            try
            {
                using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
                await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), timeout.Token);
                await socket.SendAsync(request, SocketFlags.None, timeout.Token);
                var buffer = new byte[64];
                var read = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
                var status = Encoding.ASCII.GetString(buffer, 0, read);
                if (!status.StartsWith("HTTP/1.1 200", StringComparison.Ordinal))
                {
                    error = read == 0 ? "closed without an answer" : $"answered {status.Split('\r')[0]}";
                }
            }
            catch (SocketException ex)
            {
                error = ex.SocketErrorCode.ToString(); // ConnectionRefused, ConnectionReset, ...
            }
            catch (OperationCanceledException)
            {
                error = "no answer within 60 s";
            }

            Probes.Add(new Attempt("probe", start, Now, error is null, error ?? ""));
            await Task.Delay(10);
        }
    }

    /// <summary>Lets every pull in progress finish, then stops the loops.</summary>
    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_loops);
    }

    public string Describe(IEnumerable<Attempt> attempts) =>
        string.Join("\n", attempts.Take(5).Select(a => $"{a.Client} {a.Start.TotalSeconds:0.00}-{a.End.TotalSeconds:0.00}s: {a.Error}"));

    public async ValueTask DisposeAsync()
    {
        if (!_stop.IsCancellationRequested)
        {
            await StopAsync();
        }

        _stop.Dispose();
    }

    public sealed record Attempt(string Client, TimeSpan Start, TimeSpan End, bool Succeeded, string Error);
}
