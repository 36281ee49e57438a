using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace MitmCache.FunctionalTests.ObjectStore;

/// <summary>Sums the measurements of one <see cref="Meter"/> instance's counters, and reads its gauges, by name and tags.</summary>
public sealed class MeterRecorder : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<string, long> _sums = new();

    public MeterRecorder(Meter meter)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (ReferenceEquals(instrument.Meter, meter))
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Add(instrument, value, tags));
        _listener.SetMeasurementEventCallback<int>((instrument, value, tags, _) => Add(instrument, value, tags));
        _listener.Start();
    }

    /// <summary>The sum of a counter (or the last value of a gauge) over the measurements whose tags include <paramref name="tags"/>.</summary>
    public long Value(string name, params (string Key, string Value)[] tags)
    {
        _listener.RecordObservableInstruments();
        var wanted = tags.Select(t => $"{t.Key}={t.Value}").ToArray();
        return _sums.Where(kv => kv.Key.Split('|')[0] == name && wanted.All(w => kv.Key.Split('|').Contains(w))).Sum(kv => kv.Value);
    }

    private void Add(Instrument instrument, long value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var key = string.Join('|', [instrument.Name, .. tags.ToArray().Select(t => $"{t.Key}={t.Value}").Order()]);
        if (instrument.GetType().Name.StartsWith("Observable", StringComparison.Ordinal))
        {
            _sums[key] = value;
        }
        else
        {
            _sums.AddOrUpdate(key, value, (_, old) => old + value);
        }
    }

    public void Dispose() => _listener.Dispose();
}
