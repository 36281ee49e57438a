using System.Diagnostics;
using System.Globalization;
using MitmCache.Tests.Common;

namespace MitmCache.Benchmarks.Infrastructure;

/// <summary>How curl reaches the URL: through the proxy, or straight to a server named by <c>--connect-to</c>.</summary>
internal sealed record CurlRoute(string CaPath, string? Proxy = null, string? ConnectTo = null)
{
    public static CurlRoute ViaProxy(ProxyRunner proxy) => new(proxy.CaPath, Proxy: proxy.Url);

    /// <summary>Direct to 127.0.0.1:<paramref name="port"/> for <paramref name="host"/>:<paramref name="urlPort"/>.</summary>
    public static CurlRoute Direct(string caPath, string host, int urlPort, int port) =>
        new(caPath, ConnectTo: $"{host}:{urlPort}:127.0.0.1:{port}");
}

/// <summary>One curl download: what <c>-w</c> reported and the wall time around the process.</summary>
internal sealed record CurlResult(int Status, long Bytes, double SpeedBytesPerSecond, TimeSpan Wall, string Error)
{
    public bool Ok => Status is 200 or 206 && Error.Length == 0;
}

/// <summary>curl 7.88 as the download client: <c>-o /dev/null -w '%{speed_download}'</c>, HTTP/1.1 or HTTP/2.</summary>
internal static class CurlFetch
{
    public static async Task<CurlResult> GetAsync(string url, CurlRoute route, bool http2, long expectedBytes, IEnumerable<string>? extra = null)
    {
        List<string> args = ["-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{speed_download}", "--cacert", route.CaPath,
            http2 ? "--http2" : "--http1.1", "--max-time", "600"];
        if (route.Proxy is { } proxy)
        {
            args.AddRange(["-x", proxy]);
        }

        if (route.ConnectTo is { } connectTo)
        {
            args.AddRange(["--connect-to", connectTo]);
        }

        args.AddRange(extra ?? []);
        args.Add(url);
        var clock = Stopwatch.StartNew();
        var result = await Curl.RunAsync(args, env: null, CancellationToken.None);
        var wall = clock.Elapsed;
        var parts = result.StdOut.Trim().Split(' ');
        if (parts.Length != 3)
        {
            return new CurlResult(0, 0, 0, wall, $"curl: {result}");
        }

        var status = int.Parse(parts[0], CultureInfo.InvariantCulture);
        var bytes = long.Parse(parts[1], CultureInfo.InvariantCulture);
        var speed = double.Parse(parts[2], CultureInfo.InvariantCulture);
        var error = !result.Succeeded ? $"curl exit {result.ExitCode}: {result.StdErr.Trim()}"
            : bytes != expectedBytes ? $"got {bytes} bytes, expected {expectedBytes} (status {status})"
            : "";
        return new CurlResult(status, bytes, speed, wall, error);
    }

    /// <summary>Like <see cref="GetAsync"/>, but a failure is an exception: a benchmark must not time a broken download.</summary>
    public static async Task<CurlResult> GetCheckedAsync(string url, CurlRoute route, bool http2, long expectedBytes)
    {
        var result = await GetAsync(url, route, http2, expectedBytes);
        return result.Ok ? result : throw new InvalidOperationException($"GET {url} failed: {result.Error}");
    }
}
