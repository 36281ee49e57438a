using System.Globalization;
using Microsoft.AspNetCore.Http;
using MitmCache.Caching;
using MitmCache.Certificates;
using MitmCache.Diagnostics;
using MitmCache.Upstream;

namespace MitmCache.Hosting;

/// <summary>The proxy's own endpoints on the proxy port: health, readiness, the root CA, metrics and the admin calls.</summary>
internal sealed class ProxyEndpoints(CertificateAuthority authority, BlobCache cache, UpstreamHealth health, ProxyMeter metrics, AdminEndpoints admin, TimeProvider time,
    ObjectStore.S3BlobTier? blobStore = null)
{
    /// <summary>The connection item that marks the <c>--metrics-listen</c> listener.</summary>
    public const string MonitoringListener = "mitmcache.monitoring";

    /// <summary>The <c>--metrics-listen</c> port: health, readiness and metrics, and nothing else (no CA, no admin, no proxying).</summary>
    public Task HandleMonitoringAsync(HttpContext context)
    {
        if (context.Request.Path.Value is "/metrics" or "/healthz" or "/readyz")
        {
            return HandleAsync(context);
        }

        context.Response.StatusCode = 404;
        context.Response.ContentType = "text/plain";
        return context.Response.WriteAsync("MitmCache monitoring: /metrics /healthz /readyz\n");
    }

    public async Task HandleAsync(HttpContext context)
    {
        var response = context.Response;
        var get = HttpMethods.IsGet(context.Request.Method) || HttpMethods.IsHead(context.Request.Method);
        var path = context.Request.Path.Value ?? "";
        if (path.StartsWith(AdminEndpoints.PathPrefix, StringComparison.Ordinal))
        {
            await admin.HandleAsync(context);
            return;
        }

        switch (path)
        {
            case "/healthz" when get:
                response.ContentType = "text/plain";
                await response.WriteAsync("ok\n");
                return;
            case "/readyz" when get:
                // Degradations keep the proxy ready: it fails open and serves pass-through.
                var (problems, degraded) = Readiness();
                response.StatusCode = problems.Count == 0 ? 200 : 503;
                response.ContentType = "text/plain";
                if (degraded.Count > 0)
                {
                    response.Headers["X-MitmCache-Degraded"] = "true";
                }

                await response.WriteAsync(problems.Count == 0 && degraded.Count == 0
                    ? "ready\n"
                    : string.Join('\n', problems.Concat(degraded.Select(d => $"degraded: {d}"))) + "\n");
                return;
            case "/ca.crt" when get:
                response.ContentType = "application/x-pem-file";
                response.Headers.ContentDisposition = "attachment; filename=\"mitmcache-ca.crt\"";
                response.Headers["X-Certificate-SHA256"] = authority.Sha256Fingerprint;
                await response.WriteAsync(authority.ExportPem());
                return;
            case "/metrics" when get:
                await metrics.ScrapeAsync(context);
                return;
            default:
                response.StatusCode = 404;
                response.ContentType = "text/plain";
                await response.WriteAsync(string.Create(CultureInfo.InvariantCulture,
                    $"MitmCache is a proxy: set HTTPS_PROXY=http://{LocalAuthority(context)}. Endpoints: /healthz /readyz /ca.crt /metrics /admin/*\n"));
                return;
        }
    }

    /// <summary>
    /// The cache's readiness (<see cref="BlobCache.Readiness"/>), and a CA that can mint leaves. An upstream down is a
    /// degradation, not a problem: the proxy answers from its cache, which is what it is for. So is the blob store's bucket
    /// unreachable: fills go straight upstream and uploads wait.
    /// </summary>
    private (IReadOnlyList<string> Problems, IReadOnlyList<string> Degraded) Readiness()
    {
        var (cacheProblems, cacheDegraded) = cache.Readiness();
        var problems = cacheProblems.ToList();
        var degraded = cacheDegraded.Concat(health.Known.Where(u => u.IsDown).OrderBy(u => u.Authority, StringComparer.Ordinal).Select(u =>
            u.Reach == UpstreamReach.Parent
                ? string.Create(CultureInfo.InvariantCulture, $"parent {u.Authority} down for {health.TimeInState(u).TotalSeconds:0} s ({u.Reason}), its requests go to the next parent in rank; next probe of /readyz in {health.UntilProbe(u).TotalSeconds:0} s")
                : string.Create(CultureInfo.InvariantCulture, $"upstream {u.Authority} down for {health.TimeInState(u).TotalSeconds:0} s ({u.Reason}), answered from the cache; next probe in {health.UntilProbe(u).TotalSeconds:0} s")))
            .ToList();
        if (blobStore?.DegradedReason is { } bucket)
        {
            degraded.Add(bucket);
        }

        if (!authority.Certificate.HasPrivateKey)
        {
            problems.Add("root CA has no private key: no leaf can be minted");
        }
        else if (authority.NotAfter <= time.GetUtcNow())
        {
            problems.Add($"root CA expired on {authority.NotAfter:u}");
        }

        return (problems, degraded);
    }

    /// <summary>
    /// The address the client reached us on. Not <c>Request.Host</c>: that decodes IDN labels, and a Host
    /// of <c>xn--</c> threw from the getter (a 500), besides echoing whatever the client sent.
    /// </summary>
    private static string LocalAuthority(HttpContext context)
    {
        var address = context.Connection.LocalIpAddress ?? System.Net.IPAddress.Loopback;
        address = address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
        return new System.Net.IPEndPoint(address, context.Connection.LocalPort).ToString();
    }
}
