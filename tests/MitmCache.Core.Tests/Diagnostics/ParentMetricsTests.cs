using System.Diagnostics.Metrics;
using MitmCache.Core.Tests.Upstream;
using MitmCache.Diagnostics;
using MitmCache.Upstream;

namespace MitmCache.Core.Tests.Diagnostics;

public sealed class ParentMetricsTests
{
    [Fact]
    public void Collect_TwoParents_EachByItsHostAndPort_UpDegradedRequestsFailuresBytes()
    {
        var tier = new ParentTier(UpstreamConnectorTests.TestSettings() with { UpstreamProxies = [new("http://10.0.0.1:3128"), new("http://10.0.0.2:3128")] });
        using var meter = new Meter("ParentMetricsTests");
        _ = new ParentMetrics(meter, tier);
        tier.Counts[0].Request();
        tier.Counts[0].Request();
        tier.Counts[0].Failure();
        tier.Counts[0].Received(4096);
        lock (tier.States[0].Gate)
        {
            tier.States[0].GoDown(0, DateTimeOffset.UnixEpoch, "refused");
        }

        tier.States[1].Degraded = "cache storage not writable";

        var values = Collect(meter);

        Assert.Equal(0, values[("mitmcache_parent_up", "10.0.0.1:3128")]);
        Assert.Equal(1, values[("mitmcache_parent_up", "10.0.0.2:3128")]);
        Assert.Equal(0, values[("mitmcache_parent_degraded", "10.0.0.1:3128")]);
        Assert.Equal(1, values[("mitmcache_parent_degraded", "10.0.0.2:3128")]);
        Assert.Equal(2, values[("mitmcache_parent_requests_total", "10.0.0.1:3128")]);
        Assert.Equal(1, values[("mitmcache_parent_failures_total", "10.0.0.1:3128")]);
        Assert.Equal(4096, values[("mitmcache_parent_bytes_total", "10.0.0.1:3128")]);
        Assert.Equal(0, values[("mitmcache_parent_bytes_total", "10.0.0.2:3128")]);
    }

    [Fact]
    public void Collect_NoParents_NoSeries()
    {
        var tier = new ParentTier(UpstreamConnectorTests.TestSettings());
        using var meter = new Meter("ParentMetricsTests.None");
        _ = new ParentMetrics(meter, tier);

        Assert.Empty(Collect(meter));
    }

    /// <summary>One collection of the meter's observable instruments, as a scrape makes: value by (instrument, parent).</summary>
    private static Dictionary<(string Instrument, string Parent), long> Collect(Meter meter)
    {
        var values = new Dictionary<(string, string), long>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (ReferenceEquals(instrument.Meter, meter))
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "parent")
                {
                    values[(instrument.Name, (string)tag.Value!)] = value;
                }
            }
        });
        listener.Start();
        listener.RecordObservableInstruments();
        return values;
    }
}
