using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace MitmCache.Core.Tests.Diagnostics;

/// <summary>
/// Listens to one meter, as an exporter does, and sums what its counters record per instrument and tag
/// set: what <c>/metrics</c> would show.
/// </summary>
internal sealed class MeterTotals : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<(string Instrument, string Tags), long> _sums = new();

    public MeterTotals(Meter meter)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (ReferenceEquals(instrument.Meter, meter))
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
            _sums.AddOrUpdate((instrument.Name, Key(tags)), value, (_, sum) => sum + value));
        _listener.Start();
    }

    /// <summary>The series recorded so far, each as <c>name{tag=value,...}</c> (tags sorted).</summary>
    public IReadOnlyCollection<string> Series => _sums.Keys.Select(k => $"{k.Instrument}{{{k.Tags}}}").ToList();

    /// <summary>The sum of a counter over every tag set that includes <paramref name="tags"/>.</summary>
    public long Sum(string instrument, params (string Name, string Value)[] tags) =>
        _sums.Where(s => s.Key.Instrument == instrument && tags.All(t => s.Key.Tags.Split(',').Contains($"{t.Name}={t.Value}"))).Sum(s => s.Value);

    public void Dispose() => _listener.Dispose();

    private static string Key(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var parts = new List<string>();
        foreach (var tag in tags)
        {
            parts.Add($"{tag.Key}={tag.Value}");
        }

        return string.Join(',', parts.Order(StringComparer.Ordinal));
    }
}
