namespace MitmCache.Benchmarks.Infrastructure;

internal static class Stats
{
    public static double Median(IReadOnlyCollection<double> values)
    {
        if (values.Count == 0)
        {
            return double.NaN;
        }

        var sorted = values.Order().ToArray();
        var mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    /// <summary>The value at quantile <paramref name="q"/> (0..1) of an already sorted array, nearest rank.</summary>
    public static double Quantile(double[] sorted, double q) =>
        sorted.Length == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)];

    public static string Mb(double bytesPerSecond) => (bytesPerSecond / 1e6).ToString("0", System.Globalization.CultureInfo.InvariantCulture);
}
