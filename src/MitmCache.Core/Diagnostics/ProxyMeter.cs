using System.Diagnostics.Metrics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using OpenTelemetry;
using OpenTelemetry.Metrics;

namespace MitmCache.Diagnostics;

/// <summary>
/// The proxy's <see cref="System.Diagnostics.Metrics.Meter"/>, named <c>MitmCache</c>, and the
/// OpenTelemetry Prometheus exporter that serves its instruments at <c>/metrics</c>. Any
/// <c>MeterListener</c> sees the same instruments: <c>dotnet-counters monitor --counters MitmCache</c>,
/// or an OpenTelemetry SDK added later for OTLP.
/// </summary>
/// <remarks>
/// <para>Adding an instrument (per-upstream health, cluster parents, an S3 tier):</para>
/// <list type="number">
/// <item>Create it once from <see cref="Meter"/>, in the constructor of its area's metrics class
/// (<see cref="CacheMetrics"/>, <see cref="ProxyMetrics"/>, or a new <c>XxxMetrics(Meter meter)</c>
/// registered next to them in <c>ProxyHost</c>). State that another type already keeps (a size, a
/// count of open things) is an observable instrument whose callback reads it, as in
/// <see cref="ProxyGauges"/>; it costs nothing until a scrape.</item>
/// <item>Name it exactly as it appears on <c>/metrics</c>: <c>mitmcache_</c>, base units as a
/// suffix (<c>_bytes</c>, <c>_seconds</c>), <c>_total</c> on counters and only there. The exporter
/// leaves such names as they are, so the code, <c>dotnet-counters</c>, dashboards and the README
/// share one name. Give a UCUM unit (<c>By</c>, <c>s</c>, <c>{request}</c>) and a description
/// (the HELP line).</item>
/// <item>Labels: a few values known in advance or bounded by configuration, never a digest, a
/// repository or a client address. Add 0 for every label set known in advance in the constructor,
/// so a dashboard sees the series before its first event. Keep the tag pairs in static fields: a
/// call with them allocates nothing.</item>
/// <item>Add a row to the README's Metrics table; <c>MetricsTests</c> lists every family and fails
/// until it knows the new one.</item>
/// </list>
/// <para>Instruments made before this exporter listens are not exported (a measurement nobody
/// listens to is dropped), which is why metrics classes take the <see cref="Meter"/> from here.</para>
/// </remarks>
internal sealed class ProxyMeter : IDisposable
{
    public const string Name = "MitmCache";

    private readonly MeterProvider _provider;
    private readonly RequestDelegate _exporter;

    public ProxyMeter(IMeterFactory meters, IServiceProvider services)
    {
        var meter = meters.Create(Name);
        Meter = meter;
        _provider = Sdk.CreateMeterProviderBuilder()
            .AddMeter(Name)
            // Only this host's meter: a test process runs several proxies, each with a meter of this name.
            .AddView(instrument => ReferenceEquals(instrument.Meter, meter) ? null : MetricStreamConfiguration.Drop)
            .AddPrometheusExporter(options =>
            {
                options.ScrapeResponseCacheDurationMilliseconds = 0; // every scrape is fresh
                options.TargetInfoEnabled = false; // no target_info family, no otel_scope_* labels:
                options.ScopeInfoEnabled = false; // the families are only those the README lists
            })
            .Build();
        // The exporter's middleware as a delegate of its own: the proxy's router decides what is a scrape.
        var pipeline = new ApplicationBuilder(services);
        pipeline.UseOpenTelemetryPrometheusScrapingEndpoint(_provider, predicate: _ => true, path: null, configureBranchedPipeline: null, optionsName: null);
        _exporter = pipeline.Build();
    }

    public Meter Meter { get; }

    /// <summary>Answers a scrape in the Prometheus text format 0.0.4, the one the README documents.</summary>
    public async Task ScrapeAsync(HttpContext context)
    {
        // A Prometheus server asks for OpenMetrics first; the exporter would then rename the families
        // (mitmcache_requests for mitmcache_requests_total) and add _created series.
        context.Request.Headers.Accept = "text/plain; version=0.0.4";
        var response = context.Response;
        var body = response.Body;
        using var exposition = new MemoryStream();
        response.Body = exposition;
        try
        {
            await _exporter(context);
        }
        finally
        {
            response.Body = body;
        }

        var text = WithoutEmptyLabelSets(exposition.GetBuffer().AsSpan(0, (int)exposition.Length));
        response.ContentLength = text.Length;
        await body.WriteAsync(text, context.RequestAborted);
    }

    /// <summary>
    /// <c>name{} 1</c> → <c>name 1</c>. With scope labels off, the exporter writes empty braces on a
    /// series without labels. The format allows both, but <c>/metrics</c> has always written the
    /// second, and a script that greps for <c>^mitmcache_cache_size_bytes </c> should keep working.
    /// </summary>
    private static byte[] WithoutEmptyLabelSets(ReadOnlySpan<byte> exposition)
    {
        var output = new byte[exposition.Length];
        var length = 0;
        while (!exposition.IsEmpty)
        {
            var end = exposition.IndexOf((byte)'\n');
            var line = end < 0 ? exposition : exposition[..(end + 1)];
            exposition = exposition[line.Length..];
            var name = line.IndexOfAny((byte)'{', (byte)' ');
            if (line[0] != '#' && name > 0 && line[name..].StartsWith("{} "u8))
            {
                line[..name].CopyTo(output.AsSpan(length));
                length += name;
                line = line[(name + 2)..];
            }

            line.CopyTo(output.AsSpan(length));
            length += line.Length;
        }

        return output[..length];
    }

    public void Dispose() => _provider.Dispose();
}
