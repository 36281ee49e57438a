using System.Collections;
using System.Reflection;
using LiteDB;

namespace MitmCache.Caching;

/// <summary>
/// Works around LiteDB 5.0.x giving <c>TransactionService</c> a finalizer that runs its whole dispose
/// logic on the GC finalizer thread (litedb-org/LiteDB#2828, fixed on dev in #2772, not released; 5.0.21
/// is the newest version served). A transaction whose dispose threw once, which happens when its engine
/// hits a full disk, a damaged page or a dispose racing a write, stays registered with the engine and
/// unsuppressed; when the closed engine is collected, the finalizer throws again and ends the process,
/// long after the error was handled. After closing a database we suppress the finalizer of every
/// transaction the engine still holds. Delete this file when LiteDB ships the fix.
/// </summary>
internal static class LiteDbTransactions
{
    private const BindingFlags Private = BindingFlags.Instance | BindingFlags.NonPublic;

    private static readonly FieldInfo? s_engine = typeof(LiteDatabase).GetField("_engine", Private);
    private static readonly FieldInfo? s_monitor = typeof(LiteDatabase).Assembly.GetType("LiteDB.Engine.LiteEngine")?.GetField("_monitor", Private);
    private static readonly FieldInfo? s_transactions = typeof(LiteDatabase).Assembly.GetType("LiteDB.Engine.TransactionMonitor")?.GetField("_transactions", Private);

    /// <summary>Whether this LiteDB build has the shape the workaround expects (a test pins it).</summary>
    public static bool IsSupported => s_engine is not null && s_monitor is not null && s_transactions is not null;

    /// <summary>For a closed database: no transaction left in it will run its finalizer. Returns how many were left.</summary>
    public static int SuppressFinalizers(LiteDatabase database)
    {
        if (s_engine?.GetValue(database) is not { } engine
            || s_monitor?.GetValue(engine) is not { } monitor
            || s_transactions?.GetValue(monitor) is not IDictionary transactions)
        {
            return 0;
        }

        lock (transactions)
        {
            foreach (var transaction in transactions.Values)
            {
                GC.SuppressFinalize(transaction!);
            }

            return transactions.Count;
        }
    }
}
